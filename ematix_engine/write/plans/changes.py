"""The keys a full snapshot changes, found in one join (snapshot SCD2, in-process merge)."""

from __future__ import annotations

from ematix_engine.write.context import CHANGES, LoadContext

__all__ = ["ABSENT", "CHANGED", "KIND", "NEW_KEY", "changes_sql"]

#: The change table's column telling what happens to a key (prefixed: it sits beside the keys).
KIND = "_ematix_kind"
#: Its values.
NEW_KEY, CHANGED, ABSENT = 0, 1, 2


def changes_sql(
    ctx: LoadContext, source: str, current: str, *, tracked: bool, tombstones: bool
) -> str:
    """``CREATE TEMP TABLE _ematix_chg`` of the keys that change, with their :data:`KIND`.

    One pass over the prepared ``source`` and ``current`` (a FROM item with the keys and
    compare columns of the target's current rows, plus ``is_deleted`` when ``tombstones``).

    Args:
        ctx: the session the statement runs on (its dialect and the load's columns).
        source: the prepared source rows.
        current: the target's current rows.
        tracked: the source is a full snapshot whose missing keys are deletes.
        tombstones: ``current`` rows carry ``is_deleted`` (SCD2); a current tombstone counts
            as changed when its key is back, and is not absent again when it stays away.

    :data:`KIND` is :data:`NEW_KEY` (no current row), :data:`CHANGED` (compare columns differ
    NULL-safely) or, when ``tracked``, :data:`ABSENT` (only within ``retire_within``, when the
    target sets it). Unchanged keys are left out.
    """
    q, keys = ctx.q, ctx.target.keys
    first = q(keys[0])
    deleted = f" OR t.{ctx.managed('is_deleted')}" if tombstones else ""
    alive = f" AND NOT t.{ctx.managed('is_deleted')}" if tombstones else ""
    if ctx.target.retire_within or ctx.slice is not None:
        alive += f" AND {ctx.retirable('t', source)}"
    key_list = ", ".join(f"COALESCE(s.{q(k)}, t.{q(k)}) AS {q(k)}" for k in keys)
    changed = (
        f"(s.{first} IS NOT NULL AND (t.{first} IS NULL{deleted} OR "
        f"{ctx.distinct('t', 's', ctx.compare_columns)}))"
    )
    kind = (
        f"CASE WHEN s.{first} IS NULL THEN {ABSENT} WHEN t.{first} IS NULL THEN {NEW_KEY} "
        f"ELSE {CHANGED} END AS {q(KIND)}"
    )
    create = f"CREATE TEMP TABLE {q(CHANGES)} AS "
    if not tracked:
        return (
            f"{create}SELECT {key_list}, {kind} FROM {source} AS s LEFT JOIN {current} AS t "
            f"ON {ctx.match('t', 's')} WHERE {changed}"
        )
    if not ctx.backend.SUPPORTS_FULL_JOIN:  # the same rows as a LEFT JOIN plus an anti-join
        return (
            f"{create}SELECT {key_list}, {kind} FROM {source} AS s LEFT JOIN {current} AS t "
            f"ON {ctx.match('t', 's')} WHERE {changed} "
            f"UNION ALL SELECT {ctx.cols(keys, 't')}, {ABSENT} FROM {current} AS t "
            f"WHERE NOT EXISTS (SELECT 1 FROM {source} AS s WHERE {ctx.match('s', 't')}){alive}"
        )
    return (
        f"{create}SELECT {key_list}, {kind} FROM {source} AS s FULL JOIN {current} AS t "
        f"ON {ctx.match('t', 's')} WHERE {changed} OR (s.{first} IS NULL{alive})"
    )
