"""SLA arithmetic: business calendars, deadlines per policy, the schedule of warnings and
escalations, SLA reports. It computes; it never sends mail (``desk.work.escalation`` does)."""
