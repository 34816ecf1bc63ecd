"""The read side: what the CLI shows about tickets (``tickets``), the daemon (``status``), a
dry run of the pipeline (``explain``), the mail a ticket would get (``preview``) and
everything stored about one person (``privacy``)."""
