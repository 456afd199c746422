"""Compare /generate throughput of two commits under the same conditions: interleaved runs.

    python tests/perf/bench_ab.py --base 0ccd124 [--rounds 4] [--out tests/perf/results]

Throughput measured on different days is not comparable on a shared machine (the HTTP ceiling
of ``bench_service.py`` moved by 2x between runs of the same code). This starts the service of
``--base`` (a git worktree of that commit, weights included) and of this checkout in turn,
``--rounds`` times each, and drives each with wrk at concurrency 32 for ``--duration`` seconds
after a warm-up. Prints both medians and their ratio; writes ``generate_ab.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ROOT, Server, lua_scripts, wrk  # noqa: E402


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the commit to compare this checkout with")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    script = lua_scripts(tmp)["generate"]
    base = tmp / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                   capture_output=True)
    rps: dict[str, list[float]] = {"base": [], "this": []}
    try:
        for _ in range(args.rounds):
            for name, root in (("base", base), ("this", ROOT)):
                server = Server(root)
                try:
                    wrk(server.base, args.concurrency, 2, script)  # warm-up
                    rps[name].append(wrk(server.base, args.concurrency, args.duration, script)["rps"])
                finally:
                    server.stop()
                print(f"  {name}: {rps[name][-1]:.0f} req/s", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    median = {k: statistics.median(v) for k, v in rps.items()}
    result = {"route": "/generate", "concurrency": args.concurrency, "base": args.base,
              "this": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip(),
              "rps": rps, "median_rps": median, "ratio": median["this"] / median["base"]}
    print(f"/generate at concurrency {args.concurrency}: base {args.base} {median['base']:.0f} req/s, "
          f"this checkout {median['this']:.0f} req/s, ratio {result['ratio']:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generate_ab.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
