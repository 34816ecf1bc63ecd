"""Mail plumbing only: render templates, compose MIME, queue outbox rows, deliver them over
SMTP exactly once (``sender``, ``journal``, ``transport``, ``delivery_process``). Which mail
to send, and when, is decided in ``desk.work``."""
