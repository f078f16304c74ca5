"""Translator, spec builder and decorator: keys, SQL-derived deps, lineage, fan-out."""

# No `from __future__ import annotations`: Dagster reads the asset function annotations.

from pathlib import Path
from typing import Annotated

import dagster as dg
import pytest

from ematix_dagster import (
    EmatixResource,
    EmatixTranslator,
    EmatixTranslatorData,
    build_definitions,
    build_ematix_asset_specs,
    ematix_assets,
)
from ematix_engine import ematix, pk
from ematix_engine.connections import DeltaLocalConnection, DuckDBConnection, SQLiteConnection
from ematix_engine.errors import ConfigError, UnknownNameError
from ematix_engine.types import BigInt, Text


@pytest.fixture
def conns(tmp_path: Path):
    return (
        DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb")),
        SQLiteConnection(name="src", path=str(tmp_path / "src.db")),
        DeltaLocalConnection(name="lake", path=str(tmp_path / "lake")),
    )


@pytest.fixture
def pipelines(conns):
    wh, src, lake = conns

    @ematix.table(schema="stage", connection=wh)
    class Users:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.table(schema="mart", connection=wh)
    class Names:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.table(schema="arch", connection=lake)
    class A:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.table(schema="arch", connection=lake)
    class B:
        id: BigInt
        name: Text

    @ematix.pipeline(
        target=Users,
        mode="merge",
        source_connection=src,
        group="g",
        owners=["team:x"],
        tags={"t": "v"},
    )
    def users(conn):
        """Users from the source."""
        return "WITH recent AS (SELECT * FROM people) SELECT id, name FROM recent"

    @ematix.pipeline(target=Names, mode="replace", asset_key="custom/names")
    def names(conn):
        return (
            "SELECT u.id, UPPER(u.name) AS name FROM stage.users AS u "
            "JOIN raw.events AS e ON e.id = u.id WHERE u.id > $watermark"
        )

    @ematix.pipeline(
        targets=[ematix.target(A, mode="merge"), ematix.target(B)], source_connection=wh
    )
    def fan(conn):
        return "SELECT id, name FROM mart.names"

    return users, names, fan


def _specs(specs) -> dict[str, dg.AssetSpec]:
    return {s.key.to_user_string(): s for s in specs}


def test_default_spec(pipelines) -> None:
    specs = _specs(build_ematix_asset_specs(list(pipelines)))
    users = specs["stage/users"]
    assert users.group_name == "g"
    assert users.owners == ["team:x"]
    assert users.tags == {"t": "v", "dagster/kind/duckdb": "", "dagster/kind/ematix": ""}
    assert users.kinds == {"duckdb", "ematix"}
    assert users.description == "Users from the source."
    assert users.metadata["ematix/pipeline"] == "users"
    assert users.metadata["ematix/mode"] == "merge"
    assert users.metadata["ematix/key_columns"] == "id"
    assert users.metadata["dagster/table_name"] == "stage.users"
    refs = users.metadata["dagster/code_references"].code_references
    assert refs[0].file_path == __file__
    assert specs["arch/a"].kinds == {"delta", "ematix"}


def test_deps_from_sql_map_to_known_assets_or_external_keys(pipelines) -> None:
    specs = _specs(build_ematix_asset_specs(list(pipelines)))
    dep_keys = {k: {d.asset_key.to_user_string() for d in s.deps} for k, s in specs.items()}
    assert dep_keys == {
        # unqualified table on connection "src"; the CTE "recent" is not a table
        "stage/users": {"src/people"},
        # stage.users is an ematix asset; raw.events is not
        "custom/names": {"stage/users", "raw/events"},
        # fan-out: both targets read the renamed key of the names pipeline
        "arch/a": {"custom/names"},
        "arch/b": {"custom/names"},
    }


def test_column_lineage(pipelines) -> None:
    specs = _specs(build_ematix_asset_specs(list(pipelines)))
    lineage = specs["custom/names"].metadata["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage["name"]] == [
        ("stage/users", "name")
    ]


def test_subclassed_translator_keys_flow_into_deps(pipelines) -> None:
    class Prefixed(EmatixTranslator):
        def get_asset_spec(self, data: EmatixTranslatorData) -> dg.AssetSpec:
            spec = super().get_asset_spec(data)
            return spec.replace_attributes(key=spec.key.with_prefix(data.backend))

    specs = _specs(build_ematix_asset_specs(list(pipelines), translator=Prefixed()))
    assert set(specs) == {
        "duckdb/stage/users",
        "duckdb/custom/names",
        "delta/arch/a",
        "delta/arch/b",
    }
    assert {d.asset_key.to_user_string() for d in specs["duckdb/custom/names"].deps} == {
        "duckdb/stage/users",
        "raw/events",
    }


def test_pipelines_outside_the_set_still_resolve(pipelines) -> None:
    _users, names, _fan = pipelines
    (spec,) = build_ematix_asset_specs([names])
    assert {d.asset_key.to_user_string() for d in spec.deps} == {"stage/users", "raw/events"}


def test_fan_out_is_one_subsettable_multi_asset(pipelines) -> None:
    _, _, fan = pipelines

    @ematix_assets(pipeline=fan, group_name="archive")
    def fan_assets(context: dg.AssetExecutionContext, ematix: EmatixResource):
        yield from ematix.run(context=context)

    assert fan_assets.keys == {dg.AssetKey(["arch", "a"]), dg.AssetKey(["arch", "b"])}
    assert fan_assets.can_subset
    assert {fan_assets.group_names_by_key[k] for k in fan_assets.keys} == {"archive"}
    assert {c.name for c in fan_assets.check_specs} == {"keys_unique"}


def test_unknown_depends_on_is_named(conns) -> None:
    wh, _, _ = conns

    @ematix.table(schema="s", connection=wh)
    class T:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=T, depends_on=["nowhere"])
    def lonely(conn):
        return "SELECT 1 AS id"

    with pytest.raises(UnknownNameError, match="unknown pipeline 'nowhere'"):
        build_ematix_asset_specs([lonely])


def test_two_targets_with_one_key_are_refused(conns) -> None:
    wh, _, _ = conns

    @ematix.table(schema="s", name="x", connection=wh)
    class X:
        id: Annotated[BigInt, pk()]

    @ematix.table(schema="s", name="y", connection=wh)
    class Y:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=X, asset_key="same/key")
    def px(conn):
        return "SELECT 1 AS id"

    @ematix.pipeline(target=Y, asset_key="same/key")
    def py(conn):
        return "SELECT 1 AS id"

    with pytest.raises(ConfigError, match="both produce asset 'same/key'"):
        build_ematix_asset_specs([px, py])


def test_unrenderable_sql_only_loses_sql_deps(conns, caplog: pytest.LogCaptureFixture) -> None:
    wh, _, _ = conns

    @ematix.table(schema="s", connection=wh)
    class T:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=T, source_connection="not_declared_anywhere")
    def broken(conn):
        return "SELECT 1 AS id"

    (spec,) = build_ematix_asset_specs([broken])
    assert spec.key == dg.AssetKey(["s", "t"])
    assert list(spec.deps) == []
    assert "pipeline 'broken': could not render its source SQL" in caplog.text


def test_automation_conditions_instead_of_schedules(conns) -> None:
    wh, _, _ = conns

    @ematix.table(schema="s", connection=wh)
    class T:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=T, mode="merge", schedule="*/5 * * * *")
    def cron(conn):
        return "SELECT 1 AS id"

    defs = build_definitions([cron], use_automation_conditions=True)
    assert not list(defs.schedules or [])
    spec = defs.resolve_assets_def(dg.AssetKey(["s", "t"])).specs_by_key[dg.AssetKey(["s", "t"])]
    assert spec.automation_condition == dg.AutomationCondition.on_cron("*/5 * * * *")
    defs = build_definitions([cron])
    assert [(s.name, s.cron_schedule) for s in defs.schedules] == [("cron_schedule", "*/5 * * * *")]


def test_invalid_alerter_fails_at_build_time(conns) -> None:
    with pytest.raises(ConfigError, match="alerter"):
        build_definitions([], alerters=["pager://x"])
