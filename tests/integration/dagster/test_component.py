"""EmatixPipelinesComponent from Python, from YAML, through its scaffolder and entry point."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.core.package_entry import discover_entry_point_package_objects
from dagster.components.testing import create_defs_folder_sandbox
from dagster.components.testing.utils import component_defs

from ematix_dagster import EmatixPipelinesComponent
from ematix_engine.errors import ConfigError

CATALOG = "example_project.defs.catalog.pipelines"


def _keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_registered_under_the_dg_entry_point() -> None:
    found = {(k.namespace, k.name) for k in discover_entry_point_package_objects()}
    assert ("ematix_dagster", "EmatixPipelinesComponent") in found


def test_component_from_python(example_data: Path) -> None:
    component = EmatixPipelinesComponent(
        modules=[CATALOG],
        translation=lambda spec, data: spec.replace_attributes(
            key=spec.key.with_prefix("py"), group_name=f"{data.target.mode.value}_group"
        ),
        schedules=False,
    )
    defs = component_defs(component=component)
    assert _keys(defs) == {"py/analytics/product_dim", "shop/products"}
    node = defs.resolve_asset_graph().get(dg.AssetKey(["py", "analytics", "product_dim"]))
    assert node.group_name == "scd2_group"
    assert not list(defs.schedules or [])


def test_component_subclass_overrides_get_asset_spec(example_data: Path) -> None:
    class Tagged(EmatixPipelinesComponent):
        def get_asset_spec(self, data):
            return (
                super().get_asset_spec(data).merge_attributes(tags={"custom": data.pipeline.name})
            )

    defs = component_defs(component=Tagged(modules=[CATALOG]))
    node = defs.resolve_asset_graph().get(dg.AssetKey(["analytics", "product_dim"]))
    assert node.tags["custom"] == "product_dim"
    assert [s.name for s in defs.schedules] == ["product_dim_schedule"]


@pytest.mark.parametrize(
    ("attributes", "keys", "group"),
    [
        ({"modules": [CATALOG]}, {"analytics/product_dim"}, None),
        (
            {
                "modules": [CATALOG],
                "translation": {"key_prefix": "yaml", "group_name": "g_{{ pipeline }}"},
            },
            {"yaml/analytics/product_dim"},
            "g_product_dim",
        ),
        ({"modules": [CATALOG], "select": ["product_*"], "exclude": ["product_dim"]}, set(), None),
    ],
    ids=["plain", "translation", "select-exclude"],
)
def test_component_from_yaml(example_data: Path, attributes, keys, group) -> None:
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.defs_folder_path / "pipelines"
        defs_path.mkdir()
        (defs_path / "defs.yaml").write_text(
            yaml.safe_dump(
                {"type": "ematix_dagster.EmatixPipelinesComponent", "attributes": attributes}
            )
        )
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, EmatixPipelinesComponent)
            ematix_keys = _keys(defs) - {"shop/products"}
            assert ematix_keys == keys
            if group:
                node = defs.resolve_asset_graph().get(
                    dg.AssetKey.from_user_string(next(iter(keys)))
                )
                assert node.group_name == group


def test_unknown_select_pattern_is_named(example_data: Path) -> None:
    component = EmatixPipelinesComponent(modules=[CATALOG], select=["prodcut_dim"])
    with pytest.raises(ConfigError, match=r"select pattern 'prodcut_dim' matches no pipeline"):
        component_defs(component=component)


def test_scaffolded_component_loads_and_materializes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance: dg.DagsterInstance
) -> None:
    monkeypatch.chdir(tmp_path)  # the sample pipeline writes warehouse.duckdb into the cwd
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(EmatixPipelinesComponent, defs_path="greetings")
        assert (defs_path / "pipelines.py").exists()
        written = yaml.safe_load((defs_path / "defs.yaml").read_text())
        assert written["attributes"] == {"modules": [".pipelines"], "schedules": True}
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (_, defs):
            assert _keys(defs) == {"analytics/greetings"}
            assert [s.name for s in defs.schedules] == ["greetings_schedule"]
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=dagster_instance
            )
            assert result.success
            (materialization,) = result.asset_materializations_for_node("greetings")
            assert materialization.metadata["dagster/row_count"].value == 2
    assert (tmp_path / "warehouse.duckdb").exists()
