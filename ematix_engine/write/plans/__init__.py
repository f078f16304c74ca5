"""One module per load mode's set-based SQL plan (named by :data:`ematix_engine.modes.MODES`)."""
