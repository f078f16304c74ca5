"""File formats of object-store connections, and detecting one from a path or URL."""

from __future__ import annotations

import os

__all__ = ["COMPRESSION_SUFFIXES", "FILE_FORMATS", "format_from_path"]

FILE_FORMATS = ("csv", "json_lines", "orc", "parquet")
"""Formats an object-store connection reads and writes."""

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4", ".snappy")
"""Suffixes stripped before the format suffix is looked at."""

_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    # The reference guide groups ".json / .jsonl / .ndjson" as one format, and object stores
    # have no whole-document JSON format: a ".json" file is read as JSON lines.
    ".json": "json_lines",
    ".jsonl": "json_lines",
    ".ndjson": "json_lines",
    ".orc": "orc",
}


def format_from_path(path: str | os.PathLike[str]) -> str | None:
    """Guess the file format of a path or URL from its suffix.

    Compression suffixes (``.gz``, ``.bz2``, ``.zst``, ``.lz4``, ``.snappy``) are stripped
    first, so ``events.csv.gz`` is CSV. Matching ignores case. A query string is *not*
    stripped: ``data.parquet?download=true`` gives ``None``; strip it first if you need that.

    Args:
        path: A file path or URL such as ``s3://bucket/year=2026/events.csv.gz``.

    Returns:
        ``"parquet"`` (``.parquet``, ``.pq``), ``"csv"`` (``.csv``, ``.tsv``),
        ``"json_lines"`` (``.json``, ``.jsonl``, ``.ndjson``), ``"orc"`` (``.orc``), or
        ``None`` when the suffix says nothing.

    Example:
        >>> format_from_path("s3://bucket/year=2026/events.csv.gz")
        'csv'
        >>> format_from_path("logs.ndjson")
        'json_lines'
        >>> format_from_path("data.parquet")
        'parquet'
        >>> format_from_path("unknown.xml") is None
        True
    """
    name = os.fspath(path).lower()
    stripped = True
    while stripped:
        stripped = False
        for suffix in COMPRESSION_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                stripped = True
    for suffix, file_format in _SUFFIX_FORMATS.items():
        if name.endswith(suffix) and len(name) > len(suffix) and name[-len(suffix) - 1] != "/":
            return file_format
    return None
