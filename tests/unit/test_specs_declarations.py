"""Declaration validation: errors name the pipeline and the field, and suggest fixes."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine import registry
from ematix_engine.api import ematix
from ematix_engine.api.table import pk, table_spec
from ematix_engine.errors import ConfigError, CycleError
from ematix_engine.normalize import lower
from ematix_engine.specs import Deletes, LoadMode
from ematix_engine.types import BigInt, Text, TimestampTZ


@ematix.table(schema="an")
class Customer:
    id: Annotated[BigInt, pk()]
    name: Text | None
    updated_at: TimestampTZ


@ematix.table(schema="an")
class NoKey:
    name: Text
    other: Text | None


def sql(conn) -> str:
    return "SELECT 1"


def declare(**options):
    name = options.pop("name", "my_pipe")
    return ematix.pipeline(target=options.pop("target", Customer), name=name, **options)(sql)


def test_a_valid_declaration_becomes_a_registered_spec() -> None:
    built = declare(
        mode="scd2", event_timestamp_column="updated_at", deletes="close", schedule="0 * * * *"
    )
    target = built.spec.targets[0]
    assert (target.mode, target.keys, target.deletes) == (LoadMode.SCD2, ("id",), Deletes.CLOSE)
    assert target.event_timestamp_column == "updated_at"
    assert registry.get_pipeline("my_pipe") is built
    assert built.spec.source_line > 0 and built.spec.module == __name__


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"mode": "merge", "keys": ["idd"]}, ["my_pipe", "keys", "'idd'", "did you mean 'id'"]),
        ({"mode": "scd2", "compare_columns": ["nmae"]}, ["my_pipe", "compare_columns", "'name'"]),
        (
            {"mode": "scd2", "event_timestamp_column": "updated"},
            ["my_pipe", "event_timestamp_column", "'updated_at'"],
        ),
        ({"mode": "merge", "target": NoKey}, ["my_pipe", "an.no_key", "needs keys", "pk()"]),
        ({"mode": "scd2", "target": NoKey}, ["my_pipe", "needs keys"]),
        ({"mode": "merge", "ttl_seconds": 60}, ["my_pipe", "ttl_seconds", "scd2"]),
        ({"mode": "scd2", "ttl_seconds": 0}, ["my_pipe", "ttl_seconds", "positive"]),
        ({"mode": "merge", "deletes": "new_record"}, ["my_pipe", "new_record", "scd2"]),
        ({"mode": "append", "deletes": "close"}, ["my_pipe", "deletes", "merge"]),
        ({"mode": "upsert"}, ["my_pipe", "mode must be one of", "'upsert'"]),
        ({"mode": "merge", "deletes": "drop"}, ["my_pipe", "deletes must be one of"]),
        ({"mode": "merge", "compare_columns": ["id"]}, ["my_pipe", "compare_columns", "key"]),
        ({"schedule": "every hour"}, ["my_pipe", "'every hour'", "cron"]),
        ({"schedule": "61 * * * *"}, ["my_pipe", "cron"]),
        ({"incremental_column": "updatd_at"}, ["my_pipe", "incremental_column", "'updated_at'"]),
        ({"retry": {"max_attempt": 3}}, ["my_pipe", "max_attempt", "did you mean 'max_attempts'"]),
        ({"depends_on": "upstream"}, ["my_pipe", "depends_on", "list"]),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_invalid_declarations_name_pipeline_and_field(options: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        declare(**options)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "my_pipe" not in [p.name for p in registry.pipelines()]


def test_target_option_typo_suggests_the_option() -> None:
    with pytest.raises(ConfigError, match="did you mean 'keys'"):
        ematix.target(Customer, mode="merge", key=["id"])


def test_scd2_managed_column_names_are_refused() -> None:
    @ematix.table(schema="an")
    class Clash:
        id: Annotated[BigInt, pk()]
        valid_from: TimestampTZ

    with pytest.raises(ConfigError, match="valid_from"):
        declare(target=Clash, mode="scd2")


def test_target_and_targets_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        ematix.pipeline(target=Customer, targets=[Customer], name="both")(sql)


def test_cycle_in_depends_on_names_the_ring() -> None:
    declare(name="a", depends_on=["c"])
    declare(name="b", depends_on=["a"])

    with pytest.raises(CycleError) as caught:
        declare(name="c", depends_on=["b"])

    ring = caught.value.ring
    assert ring[0] == ring[-1] == "c" and set(ring) == {"a", "b", "c"}
    assert "c -> b -> a -> c" in str(caught.value)
    assert "c" not in [p.name for p in registry.pipelines()]


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(CycleError, match="solo -> solo"):
        declare(name="solo", depends_on=["solo"])


def test_table_declaration_errors() -> None:
    with pytest.raises(ConfigError, match="cannot be nullable"):

        @ematix.table(schema="an")
        class NullablePk:
            id: Annotated[BigInt | None, pk()]

    with pytest.raises(ConfigError, match=r"'price'.*ematix_engine\.types"):

        @ematix.table(schema="an")
        class WrongType:
            price: float

    with pytest.raises(ConfigError, match="declares no columns"):

        @ematix.table(schema="an")
        class Empty:
            pass


def test_table_spec_reads_annotations() -> None:
    @ematix.table(schema="an", name="explicit")
    class Whatever:
        id: Annotated[BigInt, pk()]
        email: Annotated[Text | None, lower()]

    spec = table_spec(Whatever)
    assert spec.qualified_name == "an.explicit"
    assert spec.primary_key == ("id",)
    email = spec.column("email")
    assert email.nullable and email.normalizers == (lower(),)
    with pytest.raises(ConfigError, match="did you mean 'email'"):
        spec.column("emial")


def test_incremental_column_with_snapshot_deletes_is_rejected() -> None:

    from ematix_engine import ematix
    from ematix_engine.errors import ConfigError

    @ematix.table(schema="an")
    class Inc:
        id: Annotated[BigInt, pk()]
        ts: TimestampTZ

    with pytest.raises(ConfigError, match="full snapshot"):

        @ematix.pipeline(target=Inc, mode="scd2", deletes="close", incremental_column="ts")
        def inc(conn):
            return "SELECT 1"


def test_string_annotations_resolve_where_the_table_is_declared() -> None:
    # This module has ``from __future__ import annotations``: the names below exist only here.
    from ematix_engine.types import Integer as LocalInt
    from ematix_engine.types import String as LocalString

    @ematix.table(schema="an")
    class Local:
        id: Annotated[LocalInt, pk()]
        code: LocalString[8] | None

    columns = {c.name: c.type.type_name() for c in table_spec(Local).columns}
    assert columns == {"id": "Integer", "code": "String[8]"}

    with pytest.raises(ConfigError, match=r"table Broken \(an.broken\), column 'x'.*'Nowhere'"):

        @ematix.table(schema="an")
        class Broken:
            x: Nowhere  # noqa: F821 - the error under test
