"""Example Dagster code location for ematix, on embedded defaults (DuckDB files under .data/)."""
