"""Causal constraints of a streaming pipeline: what ``causal=`` and ``constraints=`` may hold.

A pipeline with ``constraints=[must_match(...), never(...)]`` needs ``causal=CausalSpec(...)``,
which says which columns of the rows it writes hold the event id, its causes and its name (plus
the processor's ``window_size`` and link rules). :func:`check_causal` validates both when the
spec is built; :func:`causal_from_mapping` and :func:`constraint_from_mapping` read the TOML
forms::

    [causal]
    id_column = "event_id"
    caused_by_column = "caused_by"
    name_column = "event"
    window_size = 10000                 # optional; also data_columns, timestamp_column

    [[causal.links]]                    # optional link rules
    effect = "Alerter.alert"
    cause = "Sensor.*"
    on = "reading_id"

    [[constraints]]
    kind = "must_match"
    name = "every-order-shipped"
    trigger = "Order.placed"
    response = "Order.shipped"
    within = 1000                       # events; or within_ms = 60000 (event time)

    [[constraints]]
    kind = "never"
    name = "no-double-charge"
    pattern = ["Payment.charged", "Payment.charged"]
    within_cause = "Order.placed"

A pattern is an event name (wildcards allowed) or a table ``{name = "...", data = {...}}``
whose ``data`` fields must equal the given values; a pair is an array of two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ematix_engine.causal import CausalSpec, MustMatch, Never, Pattern, must_match, never
from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.streaming.config import check_known_keys

__all__ = [
    "CONSTRAINT_KINDS",
    "causal_from_mapping",
    "check_causal",
    "constraint_from_mapping",
]

CONSTRAINT_KINDS = ("must_match", "never")
_CAUSAL_KEYS = (
    "id_column",
    "caused_by_column",
    "name_column",
    "data_columns",
    "timestamp_column",
    "source",
    "window_size",
    "links",
)
_KEYS = {
    "must_match": ("kind", "name", "trigger", "response", "within", "within_ms"),
    "never": ("kind", "name", "pattern", "within_cause"),
}


def check_causal(
    where: str, causal: Any, constraints: Sequence[Any]
) -> tuple[CausalSpec | None, tuple[MustMatch | Never, ...]]:
    """Validate ``causal=`` and ``constraints=`` of a pipeline.

    Args:
        where: names the pipeline in messages (``streaming pipeline 'x'``).
        causal: a :class:`CausalSpec` or None.
        constraints: ``must_match(...)`` / ``never(...)`` constraints.

    Returns:
        ``(causal, constraints)`` as the spec keeps them.

    Raises:
        ConfigError: naming the key at fault.
    """
    if isinstance(constraints, MustMatch | Never) or not isinstance(constraints, Sequence):
        raise ConfigError(f"{where}: constraints must be a list of must_match(...) / never(...)")
    constraints = tuple(constraints)
    for i, constraint in enumerate(constraints):
        if not isinstance(constraint, MustMatch | Never):
            raise ConfigError(
                f"{where}: constraints[{i}] is {constraint!r}; give must_match(...) or "
                f"never(...) from ematix_engine.causal"
            )
    names = [c.name for c in constraints]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: constraints: the name {name!r} is used twice")
    if causal is None:
        if constraints:
            raise ConfigError(
                f"{where}: constraints need causal=CausalSpec(id_column=..., "
                f"caused_by_column=..., name_column=...) to turn rows into events"
            )
        return None, ()
    if not isinstance(causal, CausalSpec):
        raise ConfigError(f"{where}: causal must be a CausalSpec(...), got {causal!r}")
    if not constraints:
        raise ConfigError(f"{where}: causal is set but constraints is empty; give constraints")
    return causal, constraints


def causal_from_mapping(where: str, data: Any) -> CausalSpec:
    """The ``[causal]`` table as a :class:`CausalSpec`.

    Raises:
        ConfigError: naming ``where`` and the key.
    """
    _keys(where, "[causal]", data, _CAUSAL_KEYS)
    for key in ("id_column", "caused_by_column", "name_column"):
        if key not in data:
            raise ConfigError(f"{where}: [causal] {key} is required")
    options = dict(data)
    if "links" in options:
        links = options["links"]
        if not isinstance(links, list):
            raise ConfigError(f"{where}: [causal] links must be an array of tables")
        for i, link in enumerate(links):
            _keys(where, f"[[causal.links]] #{i + 1}", link, ("effect", "cause", "on"))
            for key in ("effect", "cause", "on"):
                if key not in link:
                    raise ConfigError(f"{where}: [[causal.links]] #{i + 1} {key} is required")
        options["links"] = tuple(
            (
                _pattern(where, f"[[causal.links]] #{i + 1} effect", link["effect"]),
                _pattern(where, f"[[causal.links]] #{i + 1} cause", link["cause"]),
                link["on"],
            )
            for i, link in enumerate(links)
        )
    try:
        return CausalSpec(**options)
    except CausalConfigError as error:
        raise ConfigError(f"{where}: [causal] {_bare(error)}") from None


def constraint_from_mapping(where: str, section: str, data: Any) -> MustMatch | Never:
    """One ``[[constraints]]`` table as a constraint.

    Raises:
        ConfigError: naming ``where``, the section and the key (a bad ``kind`` included).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {section} must be a table")
    kind = data.get("kind")
    if kind not in CONSTRAINT_KINDS:
        hint = closest_match(str(kind), CONSTRAINT_KINDS) if kind is not None else None
        raise ConfigError(
            f"{where}: {section} kind {kind!r} is not a constraint kind; use must_match or never"
            + (f" (did you mean {hint!r}?)" if hint else "")
        )
    _keys(where, section, data, _KEYS[kind])
    required = ("trigger", "response") if kind == "must_match" else ("pattern",)
    for key in required:
        if key not in data:
            raise ConfigError(f"{where}: {section} {key} is required for kind {kind!r}")
    try:
        if kind == "must_match":
            return must_match(
                _pattern(where, f"{section} trigger", data["trigger"]),
                _pattern(where, f"{section} response", data["response"]),
                name=data.get("name"),
                within=data.get("within"),
                within_ms=data.get("within_ms"),
            )
        pattern = data["pattern"]
        if isinstance(pattern, list):
            if len(pattern) != 2:
                raise ConfigError(
                    f"{where}: {section} pattern is a name or a pair [cause, effect], got "
                    f"{len(pattern)} items"
                )
            spec: Any = tuple(_pattern(where, f"{section} pattern", p) for p in pattern)
        else:
            spec = _pattern(where, f"{section} pattern", pattern)
        scope = data.get("within_cause")
        return never(
            spec,
            within_cause=None
            if scope is None
            else _pattern(where, f"{section} within_cause", scope),
            name=data.get("name"),
        )
    except CausalConfigError as error:
        raise ConfigError(f"{where}: {section} {_bare(error)}") from None


def _pattern(where: str, key: str, value: Any) -> str | Pattern:
    """A TOML pattern: a name, or ``{name = ..., data = {field = value}}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        _keys(where, key, value, ("name", "data"))
        data = value.get("data", {})
        if "name" not in value or not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: {key} is a table with name (and optionally a data table of field "
                f"values), got {dict(value)!r}"
            )
        try:
            return Pattern(value["name"], data=dict(data))
        except CausalConfigError as error:
            raise ConfigError(f"{where}: {key}: {_bare(error)}") from None
    raise ConfigError(
        f"{where}: {key} must be an event name or a table {{name = ..., data = {{...}}}}, "
        f"got {value!r}"
    )


def _keys(where: str, section: str, given: Any, known: Sequence[str]) -> None:
    check_known_keys(f"{where}: {section}", given, known, "a table")


def _bare(error: Exception) -> str:
    """The message of a causal config error without its ``CausalSpec:`` prefix."""
    text = str(error)
    return text.removeprefix("CausalSpec: ")
