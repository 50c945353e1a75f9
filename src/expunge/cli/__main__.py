"""``python -m expunge.cli``: the same entry point as the ``expunge`` script."""

from expunge.cli.app import main

main()
