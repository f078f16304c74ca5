"""`dg` in the example project, as subprocesses, in a temporary copy of the project.

The copy holds ``dg.toml`` and ``example_project/``; its folder comes first on ``PYTHONPATH``
so the copy (and the scaffolded defs) is what ``dg`` loads. Nothing is written to the
repository. ``dg dev`` (what ``make dev`` runs) is started once and must serve the example
without deprecation or supersession warnings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.dagster_dev import DagsterDevServer

REPO_ROOT = Path(__file__).resolve().parents[3]
DG = Path(sys.executable).parent / "dg"
WARNINGS = ("DeprecationWarning", "SupersessionWarning", "superseded", "deprecated")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the dg project: ``dg.toml`` and the ``example_project`` package."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO_ROOT / "dg.toml", root / "dg.toml")
    shutil.copytree(
        REPO_ROOT / "example_project",
        root / "example_project",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


def _env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), str(REPO_ROOT)]),
        "EMATIX_DATA_DIR": str(project / "data"),
        "PATH": os.pathsep.join([str(DG.parent), os.environ.get("PATH", "")]),
        "COLUMNS": "200",
    }


def dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dg ARGS`` in ``project/example_project``, as the docs show; fail loudly."""
    done = subprocess.run(
        [str(DG), *args],
        cwd=project / "example_project",
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"dg {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert not any(w in done.stderr for w in WARNINGS), done.stderr
    return done


def test_dg_list_and_check_defs(project: Path) -> None:
    listed = json.loads(dg(project, "list", "defs", "--json").stdout)
    groups = {a["asset_key"]: a["group_name"] for a in listed["assets"]}
    assert groups["analytics/customer_dim"] == "analytics"
    assert groups["analytics/product_dim"] == "catalog"  # from defs/catalog/defs.yaml
    assert groups["shop/customers"] == "shop"
    assert "ematix" in {r["name"] for r in listed["resources"]}

    checked = dg(project, "check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_dg_lists_the_component(project: Path) -> None:
    assert "ematix_dagster.EmatixPipelinesComponent" in dg(project, "list", "components").stdout


def test_dg_scaffold_defs_writes_a_working_component(project: Path) -> None:
    dg(project, "scaffold", "defs", "ematix_dagster.EmatixPipelinesComponent", "my_pipelines")

    folder = project / "example_project" / "defs" / "my_pipelines"
    assert {p.name for p in folder.iterdir()} >= {"defs.yaml", "pipelines.py"}
    assert "ematix_dagster.EmatixPipelinesComponent" in (folder / "defs.yaml").read_text()
    dg(project, "check", "defs")
    listed = json.loads(dg(project, "list", "defs", "--json").stdout)
    assert "analytics/greetings" in {a["asset_key"] for a in listed["assets"]}
    assert not (REPO_ROOT / "example_project" / "defs" / "my_pipelines").exists()


def test_dg_dev_serves_the_example_without_deprecation_warnings(
    project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "dg_dev.log"
    home = tmp_path / "home"  # as `make dev` prepares it: the example's dagster.yaml
    home.mkdir()
    settings = (REPO_ROOT / "example_project" / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(settings + "telemetry:\n  enabled: false\n")
    server = DagsterDevServer(
        workspace=project / "workspace.yaml",  # unused: dg dev reads dg.toml
        home=home,
        log_path=log,
        env={k: v for k, v in _env(project).items() if k in ("PYTHONPATH", "EMATIX_DATA_DIR")},
        dg_project=project / "example_project",
    )
    with server:
        assert server.server_info()["dagster_webserver_version"]
        nodes = server.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        assert ["analytics", "customer_dim"] in [n["assetKey"]["path"] for n in nodes]
    text = log.read_text(errors="replace")
    assert not any(w in text for w in WARNINGS), text[-3000:]
