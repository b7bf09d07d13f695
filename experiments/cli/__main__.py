"""``python -m experiments.cli``: the same as the ``xp`` command."""

from experiments.cli import main

main()
