"""`python -m desk.cli`: the same as the `desk` command."""

from desk.cli import main

main()
