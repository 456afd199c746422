"""The README's commands are true: each one is run here (or, for the test command itself and
Docker, checked against what .ci/run and the compose test run), and its performance table
matches the benchmark results it cites."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf

from tests import hostile
from tests.conftest import ROOT, fixture_clips, free_port, wait_http_ready

README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Every line of every fenced block that is a shell command (not the layout block)."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", README, flags=re.M | re.S)  # (language, text), fences paired
    lines = [line.strip() for lang, block in blocks if not lang for line in block.splitlines() if line.strip()]
    return [line for line in lines if re.match(r"(pip|curl|docker|python|apt-get) |COMPOSE_FILE=", line)]


def commands(prefix: str) -> list[str]:
    return [c for c in readme_commands() if c.startswith(prefix)]


def test_every_command_is_covered_by_one_of_these_tests():
    covered = ("pip install", "curl ", "docker compose up", "COMPOSE_FILE=", "python tests/perf/", "apt-get install -y wrk && ",
               "python -m ml.", "python -m service.client ")
    assert len(readme_commands()) >= 15
    assert [c for c in readme_commands() if not c.startswith(covered)] == []
    assert all(c.endswith("--dry-run") for c in commands("python -m ml.")), "only --dry-run forms belong here"


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    quick = README.split("## Quick start")[1].split("##")[0]
    (block,) = re.findall(r"```\n(.*?)```", quick, flags=re.S)
    first, second = block.strip().splitlines()
    assert first == "pip install -c constraints.txt -e . && python -m service"
    assert second == "pip install -c constraints.txt -e '.[test]' && python -m pytest"
    assert second in (ROOT / ".ci" / "run").read_text()


def test_docker_command_is_what_the_compose_test_runs():
    assert commands("docker ") == ["docker compose up --build"]
    (cpu_line,) = commands("COMPOSE_FILE=")
    cpu_file, rest = cpu_line.removeprefix("COMPOSE_FILE=").split(" ", 1)
    assert rest == "docker compose up --build"
    compose_test = (ROOT / "tests" / "docker" / "test_compose.py").read_text()
    assert f'"COMPOSE_FILE": "{cpu_file}"' in compose_test
    assert '"docker", "compose", "up", "-d", "--build"' in compose_test  # the same command, detached


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The quick start's first command (after its install), as a process on a free port, and a
    folder holding clip.wav, memo.m4a (AAC, as a phone records) and me.jpg, where the curl examples run."""
    from tests.conftest import container_bytes

    folder = tmp_path_factory.mktemp("readme")
    data, sr = sf.read(fixture_clips()["happy"])
    sf.write(folder / "clip.wav", data, sr)
    (folder / "memo.m4a").write_bytes(container_bytes(data, sr, "m4a"))
    hostile.face_photo().save(folder / "me.jpg", quality=92)  # a photo with a face, drawn by the shipped generator
    port = free_port()
    serve = commands("pip install -c constraints.txt -e . && ")[0].split(" && ", 1)[1]
    proc = subprocess.Popen(serve.split(), cwd=ROOT, env={**os.environ, "EMOFACE_PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http_ready(f"http://127.0.0.1:{port}", proc, seconds=60)
        yield port, folder
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("line", commands("curl "))
def test_curl_example(served, line):
    port, folder = served
    run = line.replace("localhost:8000", f"127.0.0.1:{port}").replace("curl ", "curl -sS --fail-with-body ", 1)
    out = subprocess.run(["bash", "-c", run], cwd=folder, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode() + out.stdout.decode()
    if (target := re.search(r"-o (\S+)", line)) is not None:
        assert (folder / target.group(1)).read_bytes().startswith(b"\x89PNG")
    else:
        body = json.loads(out.stdout)
        assert body["emotion"] in body["probabilities"]


@pytest.mark.parametrize("line", commands("python -m service.client "))
def test_client_command(served, line):
    """The live example against the served app, as fast as it can send (--speed 0)."""
    port, folder = served
    run = line.replace("python -m service.client", f"{sys.executable} -m service.client --url http://127.0.0.1:{port}")
    out = subprocess.run(["bash", "-c", run + " --speed 0"], cwd=folder, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    *answers, summary = out.stdout.splitlines()
    assert answers and all(line.startswith("t=") for line in answers)
    assert ("seed" in answers[0]) == ("--seed" in line) and ("the voice's face" in answers[0]) == ("--seed" not in line)
    # the last line counts the answers and the hops the server dropped, as the lines before said
    told = re.fullmatch(r"(\d+) answers, (\d+) hops dropped", summary)
    assert told and int(told[1]) == len(answers), summary
    assert int(told[2]) == sum(int(n) for n in re.findall(r"\((\d+) hops dropped before it\)", "\n".join(answers)))


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("line", commands("python -m ml."))
def test_dry_run_command(line, tmp_path):
    run = line.replace("runs/dry/", f"{tmp_path}/")
    out = subprocess.run(["bash", "-c", run], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(tmp_path.iterdir()), "the command wrote nothing"


@pytest.mark.slow
def test_model_benchmark_command(tmp_path):
    (line,) = commands("python tests/perf/bench_models.py")
    run = line.replace("tests/perf/results/models.json", str(tmp_path / "models.json"))
    out = subprocess.run(["bash", "-c", run], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "models.json").read_text())["generator_1_face"]["median_ms"] > 0


def _require_wrk() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is not installed: .ci/run installs it")
        pytest.skip("wrk not installed (apt-get install -y wrk)")


@pytest.mark.slow
def test_service_benchmark_command(tmp_path):
    """The README's line, shortened by flags argparse lets later ones override (1 s rows, one level)."""
    (line,) = commands("apt-get install -y wrk && ")
    _require_wrk()
    bench = line.split(" && ", 1)[1].replace("--out tests/perf/results", f"--out {tmp_path}")
    out = subprocess.run(["bash", "-c", bench + " --duration 1 --concurrency 32 --soak-requests 200"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "service.json").read_text())
    assert result["table"]["/emotion"][0]["rps"] > 0 and result["table"]["/emotion"][0]["errors"] == 0


@pytest.mark.slow
def test_abuse_benchmark_command(tmp_path):
    """The README's line, shortened by flags (a 3 s flood, 4 big uploads at once)."""
    (line,) = commands("python tests/perf/bench_abuse.py")
    _require_wrk()
    run = line.replace("--out tests/perf/results", f"--out {tmp_path}") + f" --cache {tmp_path / 'bombs'}"
    out = subprocess.run(["bash", "-c", run + " --flood-s 3 --uploads 4"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "abuse.json").read_text())
    assert result["bombs"]["single"]["wav-float-peak-1e19"]["status"] == 422
    assert result["abandon"]["next_status"] == 200


@pytest.mark.slow
def test_stream_benchmark_command(tmp_path):
    """The README's line, shortened by flags (2 streams, 3 s), with the abuse (about a minute)."""
    (line,) = commands("python tests/perf/bench_stream.py")
    run = line.replace("--out tests/perf/results", f"--out {tmp_path}") + " --seconds 3 --streams 2"
    out = subprocess.run(["bash", "-c", run], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "stream.json").read_text())
    (level,) = result["levels"]
    assert level["streams"] == 2 and level["answers"] + level["dropped"] >= 4 and level["p50_ms"] > 0
    abuse = result["abuse"]  # every abuse ends by its own limit
    assert set(abuse["idle_200"]) <= {"1001", "1013"} and abuse["oversized_20"] == {"1009": 20}
    # a client that never reads cannot read a close frame either: it sees the connection drop (1006)
    assert abuse["endless"]["code"] == 1000 and abuse["never_reads"]["code"] in (1000, 1006, 1008)
    assert abuse["rss_after_vs_before_pct"] < 20


@pytest.mark.slow
def test_edit_benchmark_command(tmp_path):
    """The README's line, shortened by flags (2 s rows)."""
    (line,) = commands("python tests/perf/bench_edit.py")
    _require_wrk()
    run = line.replace("--out tests/perf/results", f"--out {tmp_path}") + " --duration 2"
    out = subprocess.run(["bash", "-c", run], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "edit.json").read_text())
    assert [r["concurrency"] for r in result["edit"]] == [1, 8]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in result["edit"] + [result["speech_to_face_with_photo_c1"]])


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_performance_table_matches_the_results_files():
    section = README.split("## Performance")[1].split("\n## ")[0]
    results = [json.loads((ROOT / "tests" / "perf" / "results" / name).read_text())
               for name in ("models.json", "service.json", "abuse.json", "stream.json", "edit.json")]
    measured = [n for r in results for n in _numbers(r)]
    figures = re.findall(r"^\| [^|]+ \| ([0-9.]+) \|$", section, flags=re.M)
    assert len(figures) >= 5
    for figure in figures:
        places = len(figure.split(".")[1]) if "." in figure else 0
        assert any(round(n, places) == float(figure) for n in measured), f"{figure} is in no results file"


def test_readme_is_short_and_the_project_names_no_work_sessions():
    assert len(README.splitlines()) <= 240  # raised from 220 (2026-12-06) for the photo routes, 235 (2026-12-07) for the upsampler
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    texts = [p for p in tracked if p.endswith((".md", ".py", ".toml", ".yml", ".txt", ".js", ".html"))
             or p == ".ci/run" or p.startswith("docker/")]
    pattern = re.compile(r"session [0-9]", re.I)
    offenders = [p for p in texts if (ROOT / p).is_file() and pattern.search((ROOT / p).read_text(errors="replace"))]
    assert offenders == [], "name a date, a commit or a version instead"
