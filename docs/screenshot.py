"""Take docs/img/asset-graph.png: the example project's asset graph in the Dagster UI.

Starts ``dagster dev`` on ``workspace.yaml`` with a temporary ``DAGSTER_HOME`` and data folder,
materializes every asset once (so the graph shows row counts and passing checks), then points
headless Chromium (Debian ``chromium``; ``apt-get install -y chromium``) at the lineage page.

    .venv/bin/python docs/screenshot.py [--out docs/img/asset-graph.png] [--no-materialize]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""
NODES = "{ assetNodes { assetKey { path } repository { name location { name } } } }"
STATUS = "query S($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


@contextlib.contextmanager
def dagster_dev(workdir: Path) -> Iterator[str]:
    """Run ``dagster dev`` in its own process group; yield its URL; stop it on exit."""
    port = _free_port()
    home, data = workdir / "home", workdir / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "EMATIX_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    with (workdir / "dagster_dev.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=_default_signals, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited; see {workdir / 'dagster_dev.log'}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/server_info", timeout=2).close()
                break
            if time.monotonic() > deadline:
                raise RuntimeError("dagster dev did not answer within 90 s")
            time.sleep(0.25)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def materialize_all(url: str) -> None:
    """Launch one run of every asset and wait for it to finish."""
    nodes = _graphql(url, NODES)["assetNodes"]
    repository = nodes[0]["repository"]
    params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": n["assetKey"]["path"]} for n in nodes],
        },
        "mode": "default",
        "runConfigData": {},
    }
    launched = _graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launch refused: {launched}")
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            print(f"run {run_id}: {status}")
            return
        time.sleep(1)
    raise RuntimeError(f"run {run_id} did not finish within 180 s")


class _DevTools:
    """A tiny Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, socket: object) -> None:
        self.socket = socket
        self.next_id = 0

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


def screenshot(url: str, out: Path, workdir: Path, size: str) -> None:
    """Open ``url`` in headless Chromium, expand every asset group (Alt+E), save a PNG."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    width, height = (int(v) for v in size.split(","))
    scale = 0.66  # lay the page out on a 1.5x larger screen, so the whole graph fits
    port = _free_port()
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
    out.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         f"--window-size={int(width / scale)},{int(height / scale)}",
         f"--remote-debugging-port={port}", "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        try:
            from websockets.sync.client import connect
        except ImportError:  # no DevTools client: a plain screenshot, groups as the UI shows
            subprocess.run(
                [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-plain",
                 f"--window-size={width},{height}", "--virtual-time-budget=20000",
                 f"--screenshot={out}", url],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
            )  # fmt: skip
            return
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            tools = _DevTools(ws)
            tools.call("Emulation.setDeviceMetricsOverride", width=int(width / scale),
                       height=int(height / scale), deviceScaleFactor=scale, mobile=False)  # fmt: skip
            tools.call("Page.enable")
            tools.call("Page.navigate", url=url)
            time.sleep(8)
            for kind in ("keyDown", "keyUp"):  # Alt+E: expand all groups (the UI remembers)
                tools.call("Input.dispatchKeyEvent", type=kind, modifiers=1, key="e",
                           code="KeyE", windowsVirtualKeyCode=69)  # fmt: skip
            time.sleep(2)
            tools.call("Page.reload")  # lay the expanded graph out again, zoomed to fit
            time.sleep(8)
            shot = tools.call("Page.captureScreenshot", format="png")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    out.write_bytes(base64.b64decode(shot["data"]))


def main() -> None:
    """Parse the arguments, start Dagster, materialize, take the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img" / "asset-graph.png")
    parser.add_argument("--no-materialize", action="store_true")
    parser.add_argument("--size", default="2000,1150")
    parser.add_argument("--path", default="/asset-groups", help="UI page to capture")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ematix-shot-") as tmp:
        workdir = Path(tmp)
        with dagster_dev(workdir) as url:
            _graphql(url, "mutation { setNuxSeen }")  # no "join the community" dialog
            if not args.no_materialize:
                materialize_all(url)
            screenshot(url + args.path, args.out, workdir, args.size)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
