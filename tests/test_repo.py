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
    from service.config import Settings
    from service.main import create_app
    from service.middleware import route_paths

    urls = re.findall(r"curl [^\n]*?localhost:8000(/[a-z\-]*)", readme())
    assert {"/emotion", "/generate", "/speech-to-face"} <= set(urls)
    assert set(urls) <= route_paths(create_app(Settings(_env_file=None)))


def test_no_data_committed():
    """Nothing large is tracked: corpora stay in ../shared/data, weights stay small."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "weights/ser.pt" in tracked and "weights/generator.pt" in tracked
    big = [p for p in tracked if (ROOT / p).stat().st_size > 10 * 1024 * 1024]
    assert not big, big
    assert not [p for p in tracked if p.endswith((".csv", ".csv.gz", ".wav"))]


class _Item:
    def __init__(self, marked: bool) -> None:
        self.marked = marked

    def get_closest_marker(self, name: str):
        return object() if self.marked and name == "data" else None


def test_data_marker_skips_without_corpora_and_fails_in_ci(monkeypatch, tmp_path):
    import pytest

    from tests import conftest

    monkeypatch.setattr(conftest, "CORPORA", {"ravdess": tmp_path / "absent.csv"})
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="ravdess"):
        conftest.pytest_runtest_setup(_Item(marked=True))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        conftest.pytest_runtest_setup(_Item(marked=True))
    conftest.pytest_runtest_setup(_Item(marked=False))  # unmarked tests never need the corpora
    (tmp_path / "absent.csv").write_text("path\n")
    conftest.pytest_runtest_setup(_Item(marked=True))  # present: runs, in CI too
