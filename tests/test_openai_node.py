"""End to end with the official `openai` Node SDK: tests/js/videos.mjs → gateway → simulator.

`./dev test` installs the SDK (`npm ci` in tests/js). Without node or the SDK the test skips
locally, but fails when `CI` is set: CI must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import FAKE_ALICE_KEY, ServerThread

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "videos.mjs"


def _node_or_skip() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed (Node 20+ is needed for the Node SDK end-to-end test)"
    elif not (JS_DIR / "node_modules" / "openai").is_dir():
        missing = ("the openai npm package is not installed in tests/js/node_modules; "
                   "run `cd tests/js && npm ci` (./dev test does it)")
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Node SDK test must run, but {missing}")
        pytest.skip(missing)
    assert node is not None
    return node


def test_node_sdk_create_poll_download(gateway: ServerThread) -> None:
    node = _node_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run(
        [node, str(SCRIPT), gateway.url + "/v1", FAKE_ALICE_KEY],
        cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, f"videos.mjs exited {done.returncode}:\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"videos.mjs printed nothing; stderr:\n{done.stderr}"
    summary = json.loads(lines[-1])
    print("node sdk summary:", summary)
    assert summary["status"] == "completed"
    assert (summary["model"], summary["seconds"], summary["size"]) == ("sora-2", "8", "1280x720")
    assert summary["box"] == "ftyp"
    assert summary["bytes"] > 1000
