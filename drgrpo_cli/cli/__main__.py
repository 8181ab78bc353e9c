"""``python -m drgrpo_cli.cli``: the ``drgrpo`` command."""

from drgrpo_cli.cli.app import main

main()
