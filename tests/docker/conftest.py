"""The local Docker engine the end-to-end tests need: started as root with
../shared/tools/docker-engine.sh. In CI a missing engine is a failure, elsewhere a skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

ENGINE_SCRIPT = ROOT.parent / "shared" / "tools" / "docker-engine.sh"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"docker end-to-end test cannot run in CI: {reason}")
    pytest.skip(f"docker end-to-end test not run: {reason}")


@pytest.fixture(scope="session")
def engine():
    if os.geteuid() != 0:
        _unavailable("not root, so no local Docker engine can be started")
    if not ENGINE_SCRIPT.exists():
        _unavailable(f"{ENGINE_SCRIPT} not found")
    result = subprocess.run(["bash", str(ENGINE_SCRIPT)], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0 or shutil.which("docker") is None:
        _unavailable(f"the Docker engine did not start: {result.stderr[-2000:]}")
