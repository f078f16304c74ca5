"""``@udf`` and ``@udaf``: Python functions and accumulator classes as DataFusion functions.

Both decorators follow the reference guide: argument, state and return types are DataFusion
type strings (``"Int8"`` … ``"Int64"``, ``"UInt8"`` … ``"UInt64"``, ``"Float32"``,
``"Float64"``, ``"Boolean"``, ``"Utf8"``, ``"Binary"``; case-insensitive, so ``"int64"`` works
too), an unknown type string fails at decoration time (:class:`UdfTypeError`, a ``ValueError``),
and ``name=`` decouples the SQL name from the Python identifier.

A scalar UDF is called **once per batch** with one ``pyarrow.Array`` per argument and must return
one ``pyarrow.Array`` of the declared type and the batch's length. A UDAF class gets the
``__init__`` / ``update_batch`` / ``merge_batch`` / ``evaluate`` / ``state`` protocol of the guide;
:class:`_AccumulatorBridge` maps it onto DataFusion's ``Accumulator``. Return values are checked
(type and length) and a mismatch names the function and the method, instead of surfacing as an
opaque DataFusion error.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ematix_engine.errors import ConfigError
from ematix_engine.transform.errors import UdfTypeError

__all__ = [
    "AggregateUdf",
    "ScalarUdf",
    "UdfFailures",
    "UdfResultError",
    "arrow_type",
    "check_unique_names",
    "udaf",
    "udf",
]


class UdfFailures:
    """Where the functions registered on one session note the first error they raise.

    DataFusion reports a Python exception as the text of a ``PyErr`` with its traceback; the
    stage reads the original exception from here instead, so its error says "UDF 'x' raised
    ValueError: …" and chains the exception. (DataFusion may call a UDF on one of its own
    threads, so this is a plain holder guarded by a lock, not a thread-local.)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: tuple[str, BaseException] | None = None

    def note(self, where: str, error: BaseException) -> None:
        """Keep ``error`` raised in ``where`` unless an earlier one is kept already."""
        with self._lock:
            if self._first is None:
                self._first = (where, error)

    def take(self) -> tuple[str, BaseException] | None:
        """The first error noted since the last call, and forget it."""
        with self._lock:
            first, self._first = self._first, None
            return first


_TYPES: dict[str, pa.DataType] = {
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Boolean": pa.bool_(),
    "Utf8": pa.string(),
    "Binary": pa.binary(),
}
_BY_LOWER = {name.lower(): arrow for name, arrow in _TYPES.items()}
_VOLATILITIES = ("immutable", "stable", "volatile")


def arrow_type(type_string: object, *, function: str, field: str) -> pa.DataType:
    """The Arrow type of a DataFusion type string such as ``"Float64"`` (case-insensitive).

    Raises:
        UdfTypeError: the string is not one of the supported types.
    """
    found = _BY_LOWER.get(type_string.lower()) if isinstance(type_string, str) else None
    if found is None:
        raise UdfTypeError(function, field, type_string, list(_TYPES))
    return found


def _check_volatility(volatility: str, function: str) -> str:
    if volatility not in _VOLATILITIES:
        raise ConfigError(
            f"UDF {function!r}: volatility {volatility!r} is not one of {', '.join(_VOLATILITIES)}"
        )
    return volatility


class UdfResultError(TypeError):
    """A UDF or UDAF method returned something else than its declaration says."""


def _check_result(value: Any, expected: pa.DataType, length: int | None, where: str) -> pa.Array:
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not isinstance(value, pa.Array):
        raise UdfResultError(f"{where} returned {type(value).__name__}; return a pyarrow.Array")
    if value.type != expected:
        raise UdfResultError(f"{where} returned an array of {value.type}; declared {expected}")
    if length is not None and len(value) != length:
        raise UdfResultError(f"{where} returned {len(value)} values for {length} input rows")
    return value


@dataclass(frozen=True, slots=True)
class ScalarUdf:
    """A Python function registered as a DataFusion scalar UDF (made by :func:`udf`).

    Calling the object calls the wrapped function unchanged, so it stays testable on its own.
    """

    function: Callable[..., Any]
    name: str
    args: tuple[pa.DataType, ...]
    returns: pa.DataType
    volatility: str

    def __call__(self, *args: Any) -> Any:
        """Call the wrapped Python function directly."""
        return self.function(*args)

    def to_datafusion(self, failures: UdfFailures | None = None) -> Any:
        """The ``datafusion.ScalarUDF`` to register on a session.

        Args:
            failures: where to note an exception the function raises (see :class:`UdfFailures`).
        """
        import datafusion

        function, returns, where = self.function, self.returns, f"UDF {self.name!r}"

        def call(*arrays: pa.Array) -> pa.Array:
            length = len(arrays[0]) if arrays else None
            try:
                return _check_result(function(*arrays), returns, length, where)
            except Exception as error:
                if failures is not None:
                    failures.note(where, error)
                raise

        return datafusion.udf(call, list(self.args), returns, self.volatility, self.name)


@dataclass(frozen=True, slots=True)
class AggregateUdf:
    """A Python accumulator class registered as a DataFusion aggregate UDF (made by :func:`udaf`).

    Calling the object builds a fresh accumulator of the wrapped class.
    """

    cls: type
    name: str
    args: tuple[pa.DataType, ...]
    state: tuple[pa.DataType, ...]
    returns: pa.DataType
    volatility: str

    def __call__(self) -> Any:
        """A fresh instance of the wrapped accumulator class."""
        return self.cls()

    def to_datafusion(self, failures: UdfFailures | None = None) -> Any:
        """The ``datafusion.AggregateUDF`` to register on a session.

        Args:
            failures: where to note an exception a method raises (see :class:`UdfFailures`).
        """
        from datafusion import AggregateUDF

        factory = functools.partial(_AccumulatorBridge, self, failures)
        return AggregateUDF(
            self.name, factory, list(self.args), self.returns, list(self.state), self.volatility
        )


class _AccumulatorBridge:
    """Adapts a guide-style accumulator class to DataFusion's ``Accumulator`` protocol."""

    __slots__ = ("_failures", "_inner", "_spec")

    def __init__(self, spec: AggregateUdf, failures: UdfFailures | None) -> None:
        self._spec = spec
        self._failures = failures
        self._inner = self._guard("__init__()", spec.cls)

    def _guard(self, method: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as error:
            if self._failures is not None:
                self._failures.note(f"UDAF {self._spec.name!r}: {method}", error)
            raise

    def update(self, *values: pa.Array) -> None:
        self._guard("update_batch()", self._inner.update_batch, *values)

    def merge(self, states: list[pa.Array]) -> None:
        self._guard("merge_batch()", self._inner.merge_batch, *states)

    def state(self) -> list[pa.Scalar]:
        return self._guard("state()", self._state)

    def evaluate(self) -> pa.Scalar:
        return self._guard("evaluate()", self._evaluate)

    def _state(self) -> list[pa.Scalar]:
        where = f"UDAF {self._spec.name!r}: state()"
        arrays = tuple(self._inner.state())
        if len(arrays) != len(self._spec.state):
            raise UdfResultError(
                f"{where} returned {len(arrays)} arrays; declared {len(self._spec.state)} "
                f"state fields"
            )
        return [
            _check_result(array, expected, 1, where)[0]
            for array, expected in zip(arrays, self._spec.state, strict=True)
        ]

    def _evaluate(self) -> pa.Scalar:
        where = f"UDAF {self._spec.name!r}: evaluate()"
        return _check_result(self._inner.evaluate(), self._spec.returns, 1, where)[0]


def udf(
    *,
    args: Sequence[str],
    returns: str,
    name: str | None = None,
    volatility: str = "immutable",
) -> Callable[[Callable[..., Any]], ScalarUdf]:
    """Declare a Python function as a scalar SQL function for ``transform_sql``.

    The function is called once per batch with one ``pyarrow.Array`` per argument; vectorise
    inside it (``pyarrow.compute`` or numpy) and return one ``pyarrow.Array``.

    Args:
        args: the argument types, as DataFusion type strings (``"Float64"``, ``"Utf8"``, …).
        returns: the result type, as a type string.
        name: the SQL name (default: the function's ``__name__``).
        volatility: ``"immutable"`` (default), ``"stable"`` or ``"volatile"``.

    Returns:
        A decorator turning the function into a :class:`ScalarUdf`.

    Raises:
        UdfTypeError: a type string is not supported (also a ``ValueError``).

    Examples:
        >>> import pyarrow.compute as pc
        >>> @udf(args=("Float64",), returns="Float64", name="double_it")
        ... def double(x):
        ...     return pc.multiply(x, 2.0)
        >>> double.name
        'double_it'
    """

    def decorate(function: Callable[..., Any]) -> ScalarUdf:
        sql_name = name or function.__name__
        return ScalarUdf(
            function=function,
            name=sql_name,
            args=tuple(
                arrow_type(t, function=sql_name, field=f"argument {i + 1}")
                for i, t in enumerate(args)
            ),
            returns=arrow_type(returns, function=sql_name, field="return"),
            volatility=_check_volatility(volatility, sql_name),
        )

    return decorate


def udaf(
    *,
    args: Sequence[str],
    state: Sequence[str],
    returns: str,
    name: str | None = None,
    volatility: str = "immutable",
) -> Callable[[type], AggregateUdf]:
    """Declare an accumulator class as an aggregate SQL function for ``transform_sql``.

    The class needs ``__init__(self)`` (identity state), ``update_batch(self, *args)`` (one
    ``pyarrow.Array`` per declared argument), ``merge_batch(self, *states)`` (one array per
    declared state field), ``evaluate(self)`` (a length-1 array of the return type) and
    ``state(self)`` (a tuple of length-1 arrays, one per state field).

    Args:
        args: argument types, as DataFusion type strings.
        state: the types of the intermediate state fields, in the order ``state()`` returns them.
        returns: the result type.
        name: the SQL name (default: the class's ``__name__``).
        volatility: ``"immutable"`` (default), ``"stable"`` or ``"volatile"``.

    Returns:
        A decorator turning the class into an :class:`AggregateUdf`.

    Raises:
        UdfTypeError: a type string is not supported (also a ``ValueError``).
        ConfigError: the class lacks one of the five methods.
    """

    def decorate(cls: type) -> AggregateUdf:
        sql_name = name or cls.__name__
        missing = [
            method
            for method in ("update_batch", "merge_batch", "evaluate", "state")
            if not callable(getattr(cls, method, None))
        ]
        if missing:
            raise ConfigError(f"UDAF {sql_name!r}: the class lacks {', '.join(missing)}")
        return AggregateUdf(
            cls=cls,
            name=sql_name,
            args=tuple(
                arrow_type(t, function=sql_name, field=f"argument {i + 1}")
                for i, t in enumerate(args)
            ),
            state=tuple(
                arrow_type(t, function=sql_name, field=f"state {i + 1}")
                for i, t in enumerate(state)
            ),
            returns=arrow_type(returns, function=sql_name, field="return"),
            volatility=_check_volatility(volatility, sql_name),
        )

    return decorate


def check_unique_names(
    pipeline: str, udfs: Iterable[ScalarUdf], aggregate_udfs: Iterable[AggregateUdf]
) -> None:
    """Fail when two functions of one pipeline share a SQL name (no silent shadowing).

    Raises:
        ConfigError: a duplicate name, or an object that was not made by ``@udf`` / ``@udaf``.
    """
    seen: dict[str, str] = {}
    for kind, expected, items in (
        ("udfs", ScalarUdf, udfs),
        ("aggregate_udfs", AggregateUdf, aggregate_udfs),
    ):
        for item in items:
            if not isinstance(item, expected):
                decorator = "@udf" if expected is ScalarUdf else "@udaf"
                raise ConfigError(
                    f"pipeline {pipeline!r}: {kind} holds {item!r}, which is not decorated with "
                    f"{decorator}(...)"
                )
            key = item.name.lower()
            if key in seen:
                raise ConfigError(
                    f"pipeline {pipeline!r}: two functions register the SQL name {item.name!r} "
                    f"(in {seen[key]} and {kind}); give one of them another name with name=..."
                )
            seen[key] = kind
