"""``python -m ematix_engine.cli``: the ``ematix`` command."""

from ematix_engine.cli import main

main()
