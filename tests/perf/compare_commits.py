"""Do two commits answer alike? Serves the shipped weights from a checkout of ``--base`` and from
this one, sends both the same requests, and compares the answers byte for byte.

    python tests/perf/compare_commits.py --base 9af4c8d

Requests: every committed fixture clip to ``/emotion`` (JSON), to ``/speech-to-face`` as a PNG
(the seed its bytes give) and as JSON with ``seed=7``; ``/generate`` for every emotion at seeds
0-3, sizes 48 and 96, and one 16-face grid. Prints one line per request that differs and a
summary; exits non-zero when any differs. Both services run on this machine, one after the
other, with the same environment: float kernels differ between CPUs, so only answers from one
machine are comparable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ROOT, Server  # noqa: E402

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def requests() -> list[tuple[str, str, dict]]:
    """(name, method and path, httpx keyword arguments) for every request compared."""
    out = []
    for clip in sorted((ROOT / "tests" / "fixtures" / "audio").glob("*.flac")):
        body = {"content": clip.read_bytes(), "headers": {"Content-Type": "audio/flac"}}
        out.append((f"emotion {clip.name}", "POST /emotion", body))
        out.append((f"speech-to-face png {clip.name}", "POST /speech-to-face", body))
        out.append((f"speech-to-face json seed 7 {clip.name}", "POST /speech-to-face?seed=7",
                    {**body, "headers": {**body["headers"], "Accept": "application/json"}}))
    for emotion in EMOTIONS:
        for seed in range(4):
            for size in (48, 96):
                out.append((f"generate {emotion} seed {seed} size {size}",
                            f"GET /generate?emotion={emotion}&seed={seed}&size={size}", {}))
    out.append(("generate grid sad seed 0 x16 size 96", "GET /generate?emotion=sad&seed=0&count=16&size=96", {}))
    return out


def answers(root: Path) -> dict[str, tuple[int, str, bytes]]:
    server = Server(root)
    try:
        got = {}
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for name, target, kwargs in requests():
                method, path = target.split(" ", 1)
                r = client.request(method, path, **kwargs)
                got[name] = (r.status_code, r.headers.get("content-type", ""), r.content)
        return got
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the commit to compare this checkout with")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            before = answers(base)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)
    after = answers(ROOT)
    differ = [name for name in before if before[name] != after[name]]
    for name in differ:
        print(f"differs: {name}: {before[name][:2]} -> {after[name][:2]}")
    kinds = {"JSON": sum("json" in after[n][1] for n in after), "PNG": sum("png" in after[n][1] for n in after)}
    print(f"{len(before) - len(differ)} of {len(before)} answers identical ({kinds['JSON']} JSON, {kinds['PNG']} PNG) "
          f"between {args.base} and this checkout")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
