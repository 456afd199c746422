"""The repository itself: no data committed, and the data marker behaves as documented."""

from tests.conftest import ROOT


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


def test_constraints_pin_every_dependency():
    """constraints.txt (what the README's commands, .ci/run and the Dockerfile install with) pins
    each package pyproject.toml names, runtime and test alike, to one version."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *[d for deps in project["optional-dependencies"].values() for d in deps]]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower().replace("_", "-") for d in wanted}
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith((" ", "#")))
    pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
    assert names - set(pins) == set(), "pyproject.toml names packages constraints.txt does not pin"
    assert pins["torch"] == "2.13.0", "no local label (+cpu): the same pin resolves to the CUDA build on a GPU host"
