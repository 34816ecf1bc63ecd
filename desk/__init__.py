"""desk: an email-driven support desk for web agencies. ARCHITECTURE.md maps the packages."""
