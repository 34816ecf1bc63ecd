"""The IMAP source's pieces: the connection, the lease, the UID cursor and the wait for
new mail (IDLE or polling). ``desk.inbox.sources.imap.source`` puts them together."""
