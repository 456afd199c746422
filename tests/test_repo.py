"""The documentation stays true: .ci/run runs the README's test command, and the README's
curl examples name routes that exist."""

import re

from tests.conftest import ROOT


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^\s*(pip install .*python -m pytest.*)$", readme(), flags=re.M)
    assert len(set(commands)) == 1, commands
    assert commands[0].strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_curl_examples_use_real_routes():
    from service.routes import ROUTES

    urls = re.findall(r"curl [^\n]*?localhost:8000(/[a-z\-]*)", readme())
    assert {"/emotion", "/generate", "/speech-to-face"} <= set(urls)
    assert set(urls) <= ROUTES


def test_no_data_committed():
    """Nothing large is tracked: corpora stay in ../shared/data, weights stay small."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "weights/ser.pt" in tracked and "weights/generator.pt" in tracked
    big = [p for p in tracked if (ROOT / p).stat().st_size > 10 * 1024 * 1024]
    assert not big, big
    assert not [p for p in tracked if p.endswith((".csv", ".csv.gz", ".wav"))]
