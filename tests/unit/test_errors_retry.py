"""Errors decide retries: the classification table, pickling, and declaration errors that name
the table and column."""

# No ``from __future__ import annotations``: the table classes below evaluate their annotations
# in the class body, as most user code does.

import inspect
import pickle
import sqlite3
from typing import Annotated

import dagster as dg
import duckdb
import psycopg
import psycopg.errors
import pytest

from ematix_dagster.retry import failure_for
from ematix_engine import ematix, errors, pk
from ematix_engine.errors import (
    BadValueError,
    ConfigError,
    ConnectionFailedError,
    ConnectionLostError,
    CycleError,
    DuplicateKeyError,
    EmatixError,
    LoadError,
    SchemaDriftError,
    SourceError,
    UnknownNameError,
    UnsupportedError,
    is_retryable,
    load_error,
)
from ematix_engine.normalize import parse_timestamp, regex_replace
from ematix_engine.specs import RetryPolicy
from ematix_engine.types import BigInt, Numeric, String, Text


def _raised(action) -> BaseException:
    """The exception a real driver call raises (no mocks: the drivers build them)."""
    try:
        action()
    except Exception as error:
        return error
    raise AssertionError("expected the call to raise")


def _duckdb(sql: str) -> BaseException:
    return _raised(lambda: duckdb.connect(":memory:").execute(sql))


def _sqlite(sql: str) -> BaseException:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a INTEGER NOT NULL)")
    return _raised(lambda: con.execute(sql))


def _refused_postgres() -> BaseException:  # port 1 on localhost: nothing listens, refused at once
    return _raised(lambda: psycopg.connect("postgresql://ematix@127.0.0.1:1/x", connect_timeout=5))


def _caused(wrapper: EmatixError, cause: BaseException) -> EmatixError:
    try:
        raise wrapper from cause
    except EmatixError as error:
        return error


# (id, error factory, retryable?)
CLASSIFICATION = [
    ("config", lambda: ConfigError("bad declaration"), False),
    ("unknown-name", lambda: UnknownNameError("connection", "warehous", ["warehouse"]), False),
    ("cycle", lambda: CycleError(["a", "b", "a"]), False),
    ("unsupported", lambda: UnsupportedError("sqlite", "schemas"), False),
    ("schema-drift", lambda: SchemaDriftError("an.t", "c", "text into bigint"), False),
    ("duplicate-key", lambda: DuplicateKeyError("p", {"id": 1}), False),
    ("connection-failed", lambda: ConnectionFailedError("warehouse", "refused"), True),
    ("connection-lost", lambda: ConnectionLostError("p", "an.t", "reset"), True),
    ("source-no-cause", lambda: SourceError("p", "boom"), True),
    ("load-no-cause", lambda: LoadError("p", "an.t", "boom"), True),
    ("builtin-connection-refused", lambda: ConnectionRefusedError("refused"), True),
    ("builtin-timeout", lambda: TimeoutError("slow"), True),
    ("builtin-unknown", lambda: RuntimeError("who knows"), True),
    ("builtin-value", lambda: ValueError("unknown: retried as before"), True),
    ("psycopg-refused", _refused_postgres, True),
    ("psycopg-admin-shutdown", lambda: psycopg.errors.AdminShutdown("bye"), True),
    ("psycopg-serialization", lambda: psycopg.errors.SerializationFailure("again"), True),
    ("psycopg-syntax", lambda: psycopg.errors.SyntaxError("selec"), False),
    ("psycopg-undefined-column", lambda: psycopg.errors.UndefinedColumn("nocol"), False),
    ("psycopg-undefined-table", lambda: psycopg.errors.UndefinedTable("later"), True),
    ("psycopg-division-by-zero", lambda: psycopg.errors.DivisionByZero("1/0"), False),
    ("psycopg-unique", lambda: psycopg.errors.UniqueViolation("dup"), False),
    ("duckdb-parser", lambda: _duckdb("SELEC 1"), False),
    ("duckdb-binder", lambda: _duckdb("SELECT nocol FROM (SELECT 1 AS a)"), False),
    ("duckdb-catalog", lambda: _duckdb("SELECT * FROM not_yet_there"), True),
    ("duckdb-conversion", lambda: _duckdb("SELECT CAST('x' AS INTEGER)"), False),
    ("duckdb-io", lambda: _duckdb("SELECT * FROM read_csv('/nonexistent/x.csv')"), True),
    ("sqlite-operational", lambda: _sqlite("SELECT * FROM nope"), True),
    ("sqlite-integrity", lambda: _sqlite("INSERT INTO t VALUES (NULL)"), False),
    ("source-wrapping-sql-error", lambda: _caused(SourceError("p", "x"), _duckdb("SELEC")), False),
    ("source-wrapping-refused", lambda: _caused(SourceError("p", "x"), _refused_postgres()), True),
    (
        "load-wrapping-data-error",
        lambda: _caused(LoadError("p", "t", "x"), psycopg.errors.NumericValueOutOfRange()),
        False,
    ),
]


@pytest.mark.parametrize(
    ("make", "retryable"), [c[1:] for c in CLASSIFICATION], ids=[c[0] for c in CLASSIFICATION]
)
def test_classification(make, retryable: bool) -> None:
    assert is_retryable(make()) is retryable


def test_load_error_picks_connection_lost_for_a_refused_connection() -> None:
    lost = load_error("orders", "an.orders", _refused_postgres(), "connection refused")
    assert type(lost) is ConnectionLostError and isinstance(lost, LoadError)
    assert is_retryable(lost)
    assert "pipeline 'orders': load into an.orders failed: connection refused" in str(lost)
    assert "a retry may succeed" in str(lost)


def test_load_error_keeps_a_data_error_terminal() -> None:
    cause = _duckdb("SELECT CAST('x' AS INTEGER)")
    wrapped = load_error("orders", "an.orders", cause)
    assert type(wrapped) is LoadError and wrapped.__cause__ is cause
    assert not is_retryable(wrapped)
    assert "Could not convert" in str(wrapped)


EXAMPLES = [
    EmatixError("plain"),
    ConfigError("bad"),
    UnknownNameError("connection", "warehous", ["warehouse"]),
    ConnectionFailedError("warehouse", "refused"),
    ConnectionLostError("orders", "an.orders", "reset"),
    SchemaDriftError("an.orders", "amount", "text into bigint"),
    DuplicateKeyError("orders", {"id": 1}, "twice"),
    CycleError(["a", "b", "a"]),
    SourceError("orders", "boom"),
    LoadError("orders", "an.orders", "boom"),
    UnsupportedError("sqlite", "schemas", "drop schema="),
    BadValueError("orders", "an.orders", "code", {"id": "2"}, "longer than 8 characters"),
]


def test_every_error_class_has_a_pickling_example() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, EmatixError)
    }
    assert classes == {type(e) for e in EXAMPLES}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickling_round_trip(error: EmatixError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert vars(copy) == vars(error)
    assert is_retryable(copy) is is_retryable(error)


def test_the_verdict_drawn_from_the_cause_survives_pickling() -> None:
    terminal = _caused(SourceError("orders", "syntax"), _duckdb("SELEC 1"))
    transient = _caused(SourceError("orders", "refused"), _refused_postgres())
    assert is_retryable(pickle.loads(pickle.dumps(terminal))) is False
    assert is_retryable(pickle.loads(pickle.dumps(transient))) is True


# ----------------------------------------------------------------- declaration errors
BAD_TYPES = [
    ("String[0]", lambda: String[0], "String[0]: length must be a positive integer"),
    ("String[-1]", lambda: String[-1], "String[-1]: length must be a positive integer"),
    ("String['a']", lambda: String["a"], "String['a']: length must be a positive integer"),
    ("Numeric[0, 5]", lambda: Numeric[0, 5], "Numeric[0, 5]: precision must be between 1 and 38"),
    ("Numeric[40, 2]", lambda: Numeric[40, 2], "Numeric[40, 2]: precision must be between 1"),
    ("Numeric[5, 9]", lambda: Numeric[5, 9], "Numeric[5, 9]: scale must be between 0 and the"),
    ("Numeric[12]", lambda: Numeric[12], "Numeric[12]: takes two parameters"),
]


@pytest.mark.parametrize(
    ("make", "message"), [b[1:] for b in BAD_TYPES], ids=[b[0] for b in BAD_TYPES]
)
def test_bad_column_type_names_table_and_column(make, message: str) -> None:
    with pytest.raises(ConfigError) as raised:

        @ematix.table(schema="an")
        class Events:
            event_id: Annotated[BigInt, pk()]
            name: make() | None

    assert str(raised.value).startswith(f"table Events (an.events), column 'name': {message}")


def test_bad_column_type_in_a_string_annotation_names_table_and_column() -> None:
    with pytest.raises(
        ConfigError, match=r"^table Events \(an.events\), column 'name': String\[0\]"
    ):

        @ematix.table(schema="an")
        class Events:
            name: "String[0]"  # resolved by the decorator


@pytest.mark.parametrize(
    ("normalizer", "message"),
    [
        (regex_replace(r"[0-9]+", 0), "regex_replace('[0-9]+', 0): pattern and replacement"),
        (parse_timestamp(123), "parse_timestamp(123): fmt must be a strftime-style string"),
    ],
    ids=["regex_replace", "parse_timestamp"],
)
def test_bad_normalizer_names_table_and_column(normalizer, message: str) -> None:
    with pytest.raises(ConfigError) as raised:

        @ematix.table(schema="an")
        class Events:
            name: Annotated[Text | None, normalizer]

    assert str(raised.value).startswith(f"table Events (an.events), column 'name': {message}")


# ----------------------------------------------------------------------- Dagster
def test_failure_for_a_terminal_error_forbids_retries() -> None:
    failure = failure_for(ConfigError("bad target"), RetryPolicy(max_attempts=5), 1)
    assert isinstance(failure, dg.Failure) and failure.allow_retries is False
    assert "bad target" in failure.description


def test_failure_for_a_transient_error_follows_the_policy() -> None:
    lost = ConnectionLostError("orders", "an.orders", "reset")
    # factor 2: Dagster's op RetryPolicy retries the re-raised error itself
    assert failure_for(lost, RetryPolicy(max_attempts=3, backoff_factor=2.0), 1) is None
    # factor 3: the resource requests the retry with the engine's delay
    retry = failure_for(lost, RetryPolicy(max_attempts=3, backoff_factor=3.0, jitter=0), 1)
    assert isinstance(retry, dg.RetryRequested) and retry.seconds_to_wait == 30.0
    # no attempts left: re-raise, nothing to request
    assert failure_for(lost, RetryPolicy(max_attempts=3, backoff_factor=3.0), 3) is None
