"""SCD2 (type-2 history), set-based, with out-of-order events stitched into history.

Target columns added: ``valid_from``, ``valid_to`` (NULL while current), ``is_current``,
``row_hash`` (see ``schema.hashing``) and ``is_deleted`` (tombstones of ``deletes="new_record"``).
A version's key is the business key plus ``valid_from``. The validity columns may carry other
names (``validity_columns=``, :meth:`LoadContext.managed`), and a current version may hold a
``current_valid_to`` sentinel instead of NULL: every statement writes an open end through
:meth:`LoadContext.open_end` and reads one back through :meth:`LoadContext.stored_end`, so the
plans themselves reason with NULL.

Two plans share the TTL step:

* **Snapshot** (no ``event_timestamp_column``): every source row is an event at the batch time.
  Only the current version of each key matters. One join of the source with the current
  versions (a ``FULL JOIN`` when deletes are tracked) lists the keys that change: new, changed
  (compare columns differ NULL-safely, or the current version is a tombstone) and absent. One
  ``UPDATE`` closes the current version of changed and absent keys at ``batch_ts``, one
  ``INSERT`` opens the new versions, and ``deletes="new_record"`` adds tombstones copied from
  the versions just closed. Only inserted versions are hashed; into an empty table every row is
  inserted directly. :mod:`ematix_engine.write.in_process` runs the same change query in DuckDB
  for cross-database loads into PostgreSQL.
* **Event time**: the source may be a change log. For the keys in the batch, existing history
  and new events are laid on one timeline per key, ordered by ``valid_from``. A new event equal
  to the version before it adds nothing; every other new event becomes a version, and
  ``valid_to`` is recomputed as the next version's ``valid_from`` (``LEAD``); an existing
  version that a late event with equal values now precedes merges into that event. Existing versions
  whose ``valid_to`` changes are updated in place, so an event older than the current version
  splits the interval it falls into and history stays gap-free and non-overlapping. An event at
  an existing ``(key, valid_from)`` with other values corrects that version in place.
"""

from __future__ import annotations

from ematix_engine.specs import Deletes
from ematix_engine.write.context import CHANGES, SOURCE, Counts, LoadContext
from ematix_engine.write.plans.changes import ABSENT, KIND, NEW_KEY, changes_sql

__all__ = [
    "close_current_sql",
    "insert_tombstones",
    "load_scd2",
    "snapshot_changes_sql",
]

_TIMELINE = "_ematix_tl"
_GONE = "_ematix_gone"
_CURRENT = "_ematix_cur_versions"
_BACK = "_ematix_back"


def load_scd2(ctx: LoadContext) -> Counts:
    """Apply the prepared source as SCD2 history; return the counts."""
    counts = Counts()
    total = ctx.scalar(f"SELECT COUNT(*) FROM {ctx.q(SOURCE)}")
    if ctx.target.event_timestamp_column is None:
        if ctx.target_empty:  # first load: every row opens a current version, nothing to close
            counts.inserted += _insert_versions(ctx, f"{ctx.q(SOURCE)} AS s", _NO_END, "TRUE")
            return counts
        _snapshot(ctx, counts, total)
    else:
        _event_time(ctx, counts)
        counts.unchanged = max(total - counts.inserted - counts.updated, 0)
        if ctx.target.deletes is not Deletes.IGNORE:
            _reopen(ctx, counts)
            _deletes(ctx, counts)
    if ctx.target.ttl_seconds is not None:
        counts.closed += _expire(ctx)
    return counts


def snapshot_changes_sql(ctx: LoadContext, source: str, current: str) -> str:
    """The change table of a snapshot SCD2 load over the ``current`` versions."""
    tracked = ctx.target.deletes is not Deletes.IGNORE
    return changes_sql(ctx, source, current, tracked=tracked, tombstones=True)


def insert_tombstones(ctx: LoadContext, closed_keys: str) -> int:
    """A tombstone version for every :data:`ABSENT` key of ``closed_keys``.

    Runs after the closing ``UPDATE``: each tombstone copies the version this batch just closed.
    """
    q, names = ctx.q, ctx.data_columns
    return ctx.run(
        f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {q('row_hash')}, {ctx.managed('valid_from')}, "
        f"{ctx.managed('valid_to')}, {ctx.managed('is_current')}, {ctx.managed('is_deleted')}, {q('_loaded_at')}, "
        f"{q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 't')}, t.{q('row_hash')}, {ctx.const('batch_ts')}, "
        f"{ctx.open_end()}, TRUE, "
        f"TRUE, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
        f"FROM {ctx.table} AS t JOIN {closed_keys} AS c ON {ctx.match('t', 'c')} "
        f"WHERE c.{q(KIND)} = {ABSENT} AND t.{ctx.managed('valid_to')} = {ctx.const('batch_ts')}"
    )


def close_current_sql(ctx: LoadContext, closed_keys: str) -> str:
    """``UPDATE`` closing the current version of every changed or absent key."""
    q = ctx.q
    return (
        f"UPDATE {ctx.table} AS t SET {ctx.managed('valid_to')} = {ctx.const('batch_ts')}, "
        f"{ctx.managed('is_current')} = FALSE FROM {closed_keys} AS c "
        f"WHERE t.{ctx.managed('is_current')} AND c.{q(KIND)} <> {NEW_KEY} AND {ctx.match('t', 'c')}"
    )


_NO_END = "NULL"


def _insert_versions(ctx: LoadContext, select_from: str, end: str, where: str) -> int:
    """Insert new versions from ``select_from`` (aliased ``s``) that end at ``end``.

    ``end`` is NULL for a version that stays current (it then stores the target's
    ``current_valid_to``). The hash comes from ``s.row_hash`` when the source carries it
    (event time), otherwise it is computed here, for the inserted rows only.
    """
    names = ctx.data_columns
    q = ctx.q
    carried = ctx.target.event_timestamp_column is not None
    row_hash = f"s.{q('row_hash')}" if carried else ctx.row_hash_sql("s")
    valid_to = ctx.open_end(end)
    current = "TRUE" if end == _NO_END else f"{end} IS NULL"
    return ctx.run(
        f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {ctx.managed('valid_from')}, {ctx.managed('valid_to')}, "
        f"{ctx.managed('is_current')}, {q('row_hash')}, {ctx.managed('is_deleted')}, {q('_loaded_at')}, "
        f"{q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 's')}, s.{ctx.managed('valid_from')}, {valid_to}, {current}, "
        f"{row_hash}, FALSE, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
        f"FROM {select_from} WHERE {where}"
    )


def _snapshot(ctx: LoadContext, counts: Counts, total: int) -> None:
    """Close changed and absent keys in one ``UPDATE``; insert new versions for the rest."""
    q, src, chg = ctx.q, ctx.q(SOURCE), ctx.q(CHANGES)
    current = f"(SELECT * FROM {ctx.table} WHERE {ctx.managed('is_current')})"
    if ctx.backend.JOINS_BY_NESTED_LOOPS:  # join an indexed copy, not a subquery (quadratic)
        ctx.run(f"CREATE TEMP TABLE {q(_CURRENT)} AS SELECT * FROM {current} AS c")
        if ctx.execute_writes:
            ctx.backend.index_for_joins(_CURRENT, ctx.target.keys)
        current = q(_CURRENT)
    ctx.run(snapshot_changes_sql(ctx, src, current))
    ctx.analyze(CHANGES)
    absent = ctx.scalar(f"SELECT COUNT(*) FROM {chg} WHERE {q(KIND)} = {ABSENT}")
    counts.closed += ctx.run(close_current_sql(ctx, chg))
    versions = _insert_versions(
        ctx, f"{src} AS s JOIN {chg} AS c ON {ctx.match('s', 'c')}", _NO_END, "TRUE"
    )
    counts.inserted += versions
    counts.unchanged = max(total - versions, 0)
    counts.deleted += absent
    if absent and ctx.target.deletes is Deletes.NEW_RECORD:
        counts.inserted += insert_tombstones(ctx, chg)
    ctx.run(f"DROP TABLE {chg}")
    ctx.run(f"DROP TABLE IF EXISTS {q(_CURRENT)}")


def _event_time(ctx: LoadContext, counts: Counts) -> None:
    q, src, tl = ctx.q, ctx.q(SOURCE), ctx.q(_TIMELINE)
    keys = ctx.target.keys
    part = ctx.cols(keys)
    vf, vt, h = ctx.managed("valid_from"), ctx.managed("valid_to"), q("row_hash")
    op = ctx.backend.NULL_SAFE_DISTINCT
    # Versions are compared by their values (NULL-safe), never by row_hash: a hash is only a
    # fingerprint, and one computed under other compare columns or an older encoding must not
    # count as a change. Each compare column travels as _ematix_o<i> (stored version),
    # _ematix_n<i> (event at the same time), _ematix_v<i> (effective) and _ematix_p<i> (the
    # version before).
    compare = list(ctx.compare_columns)
    idx = range(len(compare))

    def differ(left: str, right: str) -> str:
        if not compare:
            return "FALSE"
        return "(" + " OR ".join(f"{left}{i} {op} {right}{i}" for i in idx) + ")"

    old = "".join(f", t.{q(c)} AS _ematix_o{i}" for i, c in enumerate(compare))
    new = "".join(f", s.{q(c)} AS _ematix_n{i}" for i, c in enumerate(compare))
    effective = "".join(
        f", CASE WHEN _ematix_matched = 1 THEN _ematix_n{i} ELSE _ematix_o{i} END AS _ematix_v{i}"
        for i in idx
    )
    arriving = "".join(f", s.{q(c)}" for c in compare)
    before = "".join(
        f", LAG(_ematix_v{i}) OVER (PARTITION BY {part} ORDER BY {vf}) AS _ematix_p{i}" for i in idx
    )
    first = q(keys[0])
    # CTE names carry the _ematix_ prefix: on SQLite the target is not schema-qualified, so a
    # CTE named like the target table (``hist``) would shadow it ("circular reference").
    aff, hist, corr, allv, marked, kept, ends = (
        q(f"_ematix_{n}") for n in ("aff", "hist", "corr", "all", "marked", "kept", "ends")
    )
    ctx.run(
        f"CREATE TEMP TABLE {tl} AS "
        f"WITH {aff} AS (SELECT DISTINCT {ctx.cols(keys)} FROM {src}), "
        f"{hist} AS (SELECT {ctx.cols(keys, 't')}, t.{vf}, "
        f"{ctx.stored_end(f't.{vt}')} AS _ematix_old_valid_to, "
        f"t.{h} AS _ematix_old_hash, t.{ctx.managed('is_deleted')} AS _ematix_deleted{old} "
        f"FROM {ctx.table} AS t JOIN {aff} AS a ON {ctx.match('t', 'a')}), "
        f"{corr} AS (SELECT hh.*, s.{h} AS _ematix_new_hash, "
        f"CASE WHEN s.{first} IS NULL THEN 0 ELSE 1 END AS _ematix_matched{new} "
        f"FROM {hist} AS hh LEFT JOIN {src} AS s ON {ctx.match('hh', 's')} AND s.{vf} = hh.{vf}), "
        f"{allv} AS ("
        f"SELECT {ctx.cols(keys)}, {vf}, _ematix_old_valid_to, "
        f"CASE WHEN _ematix_matched = 1 THEN _ematix_new_hash ELSE _ematix_old_hash END AS {h}, "
        f"_ematix_deleted, 0 AS _ematix_is_new, "
        f"CASE WHEN _ematix_matched = 1 AND {differ('_ematix_o', '_ematix_n')} THEN 1 ELSE 0 END "
        f"AS _ematix_corrected{effective} "
        f"FROM {corr} "
        f"UNION ALL "
        f"SELECT {ctx.cols(keys, 's')}, s.{vf}, NULL, s.{h}, FALSE, 1, 0{arriving} FROM {src} AS s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {hist} AS hh WHERE {ctx.match('hh', 's')} "
        f"AND hh.{vf} = s.{vf})), "
        f"{marked} AS (SELECT x.*, "
        f"LAG({vf}) OVER (PARTITION BY {part} ORDER BY {vf}) AS _ematix_prev_vf, "
        f"LAG(_ematix_deleted) OVER (PARTITION BY {part} ORDER BY {vf}) AS _ematix_prev_deleted, "
        f"LAG(_ematix_is_new) OVER (PARTITION BY {part} ORDER BY {vf}) AS _ematix_prev_new{before} "
        f"FROM {allv} AS x), "
        # A version equal to the one before it is redundant: a new event never becomes one,
        # and an existing (non-tombstone) version that a late, equal event now precedes merges
        # into that event, so history matches what loading every event at once would give.
        f"{kept} AS (SELECT m.*, CASE WHEN _ematix_prev_vf IS NOT NULL "
        f"AND NOT {differ('_ematix_p', '_ematix_v')} "
        f"AND NOT _ematix_prev_deleted AND (_ematix_is_new = 1 OR (_ematix_prev_new = 1 AND NOT _ematix_deleted)) "
        f"THEN 1 ELSE 0 END AS _ematix_dropped FROM {marked} AS m), "
        # A key whose history has no current version was closed (deleted or expired) at its
        # latest valid_to; a late event before that time must not re-open it.
        f"{ends} AS (SELECT {ctx.cols(keys)}, CASE WHEN SUM(CASE WHEN _ematix_old_valid_to IS NULL "
        f"THEN 1 ELSE 0 END) > 0 THEN NULL ELSE MAX(_ematix_old_valid_to) END AS _ematix_key_end "
        f"FROM {hist} GROUP BY {ctx.cols(keys)}) "
        f"SELECT k.*, COALESCE(LEAD(k.{vf}) OVER (PARTITION BY {ctx.cols(keys, 'k')} "
        f"ORDER BY k.{vf}), CASE WHEN e._ematix_key_end IS NOT NULL AND k.{vf} < e._ematix_key_end "
        f"THEN e._ematix_key_end END) AS _ematix_new_valid_to "
        f"FROM {kept} AS k LEFT JOIN {ends} AS e ON {ctx.match('k', 'e')} WHERE k._ematix_dropped = 0 "
        f"UNION ALL SELECT k.*, NULL FROM {kept} AS k WHERE _ematix_dropped = 1"
    )
    moved = (
        f"FROM {tl} AS c WHERE c._ematix_is_new = 0 AND c._ematix_dropped = 0 AND {ctx.match('t', 'c')} "
        f"AND t.{vf} = c.{vf} AND c._ematix_new_valid_to {op} c._ematix_old_valid_to"
    )
    merged = ctx.run(
        f"DELETE FROM {ctx.table} AS t WHERE EXISTS (SELECT 1 FROM {tl} AS c "
        f"WHERE c._ematix_is_new = 0 AND c._ematix_dropped = 1 AND {ctx.match('t', 'c')} AND t.{vf} = c.{vf})"
    )
    counts.closed += ctx.scalar(
        f"SELECT COUNT(*) FROM {tl} AS c WHERE c._ematix_is_new = 0 AND c._ematix_dropped = 0 "
        f"AND c._ematix_old_valid_to IS NULL AND c._ematix_new_valid_to IS NOT NULL"
    )
    relinked = ctx.run(
        f"UPDATE {ctx.table} AS t SET {vt} = {ctx.open_end('c._ematix_new_valid_to')}, "
        f"{ctx.managed('is_current')} = (c._ematix_new_valid_to IS NULL) {moved}"
    )
    counts.updated += max(relinked - counts.closed, 0) + max(merged, 0)
    updates = ctx.data_columns
    assignments = ", ".join(f"{q(c)} = s.{q(c)}" for c in updates)
    counts.updated += ctx.run(
        f"UPDATE {ctx.table} AS t SET {assignments}, {h} = s.{h}, "
        f"{q('_loaded_at')} = {ctx.const('loaded_at')}, {q('_batch_id')} = {ctx.const('batch_id')} "
        f"FROM {src} AS s WHERE {ctx.match('t', 's')} AND t.{vf} = s.{vf} "
        f"AND {ctx.distinct('t', 's', compare)}"
    )
    counts.inserted += _insert_versions(
        ctx,
        f"{src} AS s JOIN {tl} AS c ON {ctx.match('s', 'c')} AND s.{vf} = c.{vf}",
        "c._ematix_new_valid_to",
        "c._ematix_is_new = 1 AND c._ematix_dropped = 0",
    )
    ctx.run(f"DROP TABLE {tl}")


def _reopen(ctx: LoadContext, counts: Counts) -> None:
    """Make every key of a full snapshot live again after its events were laid on the timeline.

    A closed key whose returning event equals its last version, or carries an event time
    from before the close, would otherwise stay closed although the snapshot has it. Its
    newest event opens a current version at max(event time, close time), so history stays
    gap-free; under ``new_record`` the current tombstone becomes that version in place.
    """
    q, src, back = ctx.q, ctx.q(SOURCE), ctx.q(_BACK)
    keys = ctx.target.keys
    vf, vt = ctx.managed("valid_from"), ctx.managed("valid_to")
    ctx.run(
        f"CREATE TEMP TABLE {back} AS SELECT s.*, e._ematix_end, e._ematix_tomb FROM {src} AS s "
        f"JOIN (SELECT {ctx.cols(keys)}, MAX({vf}) AS _ematix_last FROM {src} "
        f"GROUP BY {ctx.cols(keys)}) AS l ON {ctx.match('s', 'l')} AND s.{vf} = l._ematix_last "
        f"JOIN (SELECT {ctx.cols(keys)}, MAX({ctx.stored_end(vt)}) AS _ematix_end, "
        f"MAX(CASE WHEN {ctx.managed('is_current')} AND {ctx.managed('is_deleted')} THEN {vf} END) AS _ematix_tomb, "
        f"SUM(CASE WHEN {ctx.managed('is_current')} AND NOT {ctx.managed('is_deleted')} THEN 1 ELSE 0 END) "
        f"AS _ematix_live FROM {ctx.table} GROUP BY {ctx.cols(keys)}) AS e "
        f"ON {ctx.match('s', 'e')} WHERE e._ematix_live = 0"
    )
    names = ctx.data_columns
    # under new_record: the current tombstone becomes the live version, in place
    assignments = ", ".join(f"{q(c)} = b.{q(c)}" for c in names)
    counts.updated += ctx.run(
        f"UPDATE {ctx.table} AS t SET {assignments}, {q('row_hash')} = b.{q('row_hash')}, "
        f"{ctx.managed('is_deleted')} = FALSE, {q('_loaded_at')} = {ctx.const('loaded_at')}, "
        f"{q('_batch_id')} = {ctx.const('batch_id')} FROM {back} AS b "
        f"WHERE b._ematix_tomb IS NOT NULL AND t.{ctx.managed('is_current')} AND {ctx.match('t', 'b')}"
    )
    at = f"CASE WHEN b.{vf} > b._ematix_end THEN b.{vf} ELSE b._ematix_end END"
    counts.inserted += ctx.run(
        f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {vf}, {vt}, {ctx.managed('is_current')}, "
        f"{q('row_hash')}, {ctx.managed('is_deleted')}, {q('_loaded_at')}, {q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 'b')}, {at}, {ctx.open_end()}, TRUE, b.{q('row_hash')}, FALSE, "
        f"{ctx.const('loaded_at')}, {ctx.const('batch_id')} FROM {back} AS b "
        f"WHERE b._ematix_tomb IS NULL AND b._ematix_end IS NOT NULL"
    )
    ctx.run(f"DROP TABLE {back}")


def _deletes(ctx: LoadContext, counts: Counts) -> None:
    """Close (and, for new_record, tombstone) current keys the snapshot no longer has.

    A deletion is seen at the load time. A current version that starts later (an event dated
    in the future) is closed at its own start, never before it, so no interval is inverted;
    with ``new_record`` that version becomes the tombstone itself (a tombstone never starts
    before the version it closes).
    """
    q, src, gone = ctx.q, ctx.q(SOURCE), ctx.q(_GONE)
    keys = ctx.target.keys
    vf, now = ctx.managed("valid_from"), ctx.const("batch_ts")
    ctx.run(
        f"CREATE TEMP TABLE {gone} AS SELECT {ctx.cols(keys, 't')}, "
        f"CASE WHEN t.{vf} > {now} THEN 1 ELSE 0 END AS _ematix_future "
        f"FROM {ctx.table} AS t WHERE t.{ctx.managed('is_current')} AND NOT t.{ctx.managed('is_deleted')} AND NOT "
        f"EXISTS (SELECT 1 FROM {src} AS s WHERE {ctx.match('s', 't')}) "
        f"AND {ctx.retirable('t', src)}"
    )
    deleted = ctx.scalar(f"SELECT COUNT(*) FROM {gone}")
    future = ctx.scalar(f"SELECT COUNT(*) FROM {gone} WHERE _ematix_future = 1") if deleted else 0
    if ctx.target.deletes is Deletes.NEW_RECORD:
        names = ctx.data_columns
        ctx.run(
            f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {vf}, {ctx.managed('valid_to')}, "
            f"{ctx.managed('is_current')}, {q('row_hash')}, {ctx.managed('is_deleted')}, {q('_loaded_at')}, "
            f"{q('_batch_id')}) "
            f"SELECT {ctx.cols(names, 't')}, {now}, {ctx.open_end()}, TRUE, t.{q('row_hash')}, "
            f"TRUE, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
            f"FROM {ctx.table} AS t JOIN {gone} AS g ON {ctx.match('t', 'g')} "
            f"WHERE t.{ctx.managed('is_current')} AND g._ematix_future = 0"
        )
        # a version that has not started yet is itself the tombstone
        ctx.run(
            f"UPDATE {ctx.table} AS t SET {ctx.managed('is_deleted')} = TRUE, "
            f"{q('_loaded_at')} = {ctx.const('loaded_at')}, {q('_batch_id')} = {ctx.const('batch_id')} "
            f"FROM {gone} AS g WHERE t.{ctx.managed('is_current')} AND {ctx.match('t', 'g')} "
            f"AND g._ematix_future = 1"
        )
    closes = "AND g._ematix_future = 0" if ctx.target.deletes is Deletes.NEW_RECORD else ""
    counts.closed += ctx.run(
        f"UPDATE {ctx.table} AS t SET {ctx.managed('valid_to')} = CASE WHEN t.{vf} > {now} THEN t.{vf} "
        f"ELSE {now} END, {ctx.managed('is_current')} = FALSE FROM {gone} AS g WHERE t.{ctx.managed('is_current')} "
        f"AND NOT t.{ctx.managed('is_deleted')} AND {ctx.match('t', 'g')} {closes}"
    )
    counts.deleted += deleted
    if ctx.target.deletes is Deletes.NEW_RECORD:
        counts.inserted += deleted - future
        counts.updated += future
    ctx.run(f"DROP TABLE {gone}")


def _expire(ctx: LoadContext) -> int:
    """Close current versions older than the TTL whose key the batch did not contain."""
    src = ctx.q(SOURCE)
    return ctx.run(
        f"UPDATE {ctx.table} AS t SET {ctx.managed('valid_to')} = {ctx.const('batch_ts')}, "
        f"{ctx.managed('is_current')} = FALSE WHERE t.{ctx.managed('is_current')} "
        f"AND t.{ctx.managed('valid_from')} < {ctx.const('ttl_cutoff')} AND NOT EXISTS "
        f"(SELECT 1 FROM {src} AS s WHERE {ctx.match('s', 't')})"
    )
