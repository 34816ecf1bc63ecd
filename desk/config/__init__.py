"""Configuration: the TOML file read into validated, typed settings (``settings``), with
the schemas of its routing rules (``routing``), SLA section (``sla``) and the default
urgent phrases (``urgent_phrases``)."""
