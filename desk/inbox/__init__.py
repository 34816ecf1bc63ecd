"""Mail coming in: the sources (IMAP, Maildir, LMTP) behind one protocol, reading MIME into a
``ParsedMessage`` (``parse`` and its parts), quote stripping and auto-reply screening."""
