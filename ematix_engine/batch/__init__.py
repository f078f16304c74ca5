"""Batch loads: append, merge, SCD2 and replace, with watermarks, DAG ordering and retries."""
