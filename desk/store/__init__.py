"""Storage at the bottom: the engine and transactions (``db``), the schema (``models``,
``migrations``), batched writes (``deferred``), the directory of clients and staff
(``directory``), the event log (``tickets``) and worker heartbeats (``workers``)."""
