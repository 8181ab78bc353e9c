"""``drgrpo ablate``: grid files, the sweep runner and its summary; see ``docs/design/sweep.md`` for the modules.

Nothing is imported here, so ``import drgrpo_cli.sweep.grid`` stays light.
"""
