"""Column types, normalizers, row hashing and DDL planning."""
