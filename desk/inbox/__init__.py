"""Mail coming in: the sources (IMAP, Maildir, LMTP) behind one protocol (``sources``), the
interface they hand messages to (``intake``), reading MIME into a ``ParsedMessage``
(``parse``), quote stripping (``quotes``) and auto-reply screening (``screening``)."""
