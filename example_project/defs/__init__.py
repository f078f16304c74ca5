"""Component-declared definitions of the example (loaded with ``dagster.components.load_defs``)."""
