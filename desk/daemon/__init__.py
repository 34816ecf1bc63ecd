"""The asyncio supervisor behind ``desk run`` (``supervisor``): intake runs in threads of
its own (imapclient and the pipeline are blocking), LMTP on the event loop; the sender
delivers the outbox on the event loop over one reused SMTP connection. ``intakes`` builds
the sources, ``once`` is ``desk run --once``, ``heartbeat`` tells other workers this one
is alive. On SIGTERM or SIGINT the daemon stops taking work, finishes what is in flight,
and exits 0."""
