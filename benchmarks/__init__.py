"""Benchmarks: each ``python -m benchmarks.<name>`` prints a table and a JSON line, next to a
baseline measured in the same run."""
