"""Decisions about a message that need no mail and no ticket work: which client, tier and
priority (``classify``), who owns it (``assign``), staff commands in a reply (``commands``),
forwards (``forward``), reply-token addresses (``tokens``) and subject tags (``subject``)."""
