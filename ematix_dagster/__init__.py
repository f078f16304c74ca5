"""ematix dagster."""
