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
