"""Photo benchmark: /edit of a 512x512 photo against the real server (shipped weights).

    apt-get install wrk
    python tests/perf/bench_edit.py [--out tests/perf/results] [--duration 10]

Prints (and writes as edit.json and edit.md under --out): requests a second, p50 and p99 of
``POST /edit?emotion=happy`` with a 512x512 JPEG of a face (the London set's size; a face drawn
by the shipped generator, enlarged), at each ``--concurrency``; and /speech-to-face with that
photo beside a 4 s clip at concurrency 1. The targets (the photo issue): p50 at most 150 ms at
concurrency 1, at least 10 requests a second at concurrency 8, on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository: tests.hostile
from bench_service import ROOT, Server, lua_scripts, wrk  # noqa: E402


def multipart_lua(path: Path, fields: dict[str, tuple[str, bytes]], target: str) -> str:
    """A wrk script POSTing ``fields`` (name -> (file name, bytes)) as multipart/form-data to ``target``."""
    boundary = "emofacebenchboundary"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{fname}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for name, (fname, data) in fields.items()) + f"--{boundary}--\r\n".encode()
    (path.parent / (path.stem + ".body")).write_bytes(body)
    path.write_text(f"""
local f = io.open("{path.parent / (path.stem + '.body')}", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.path = "{target}"
wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"
""")
    return str(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "tests" / "perf" / "results"))
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    p.add_argument("--concurrency", default="1,8")
    args = p.parse_args(argv)
    from tests import hostile

    tmp = Path(tempfile.mkdtemp())
    photo = hostile.encoded_image(hostile.face_photo(size=(512, 512)), "JPEG", quality=90)
    clip = Path(lua_scripts(tmp)["post"]).parent / "clip.wav"
    edit = multipart_lua(tmp / "edit.lua", {"photo": ("me.jpg", photo)}, "/edit?emotion=happy")
    spoken = multipart_lua(tmp / "spoken.lua", {"file": ("clip.wav", clip.read_bytes()), "photo": ("me.jpg", photo)},
                           "/speech-to-face")
    server = Server()
    try:
        wrk(server.base + "/edit", 1, 2, edit)  # warm-up
        rows = [wrk(server.base + "/edit", c, args.duration, edit) for c in map(int, args.concurrency.split(","))]
        with_photo = wrk(server.base + "/speech-to-face", 1, args.duration, spoken)
    finally:
        server.stop()
    result = {"photo": "512x512 JPEG, 2 cores", "edit": rows, "speech_to_face_with_photo_c1": with_photo}
    lines = ["| route | concurrency | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for name, r in [("/edit", r) for r in rows] + [("/speech-to-face with photo", with_photo)]:
        lines.append(f"| {name} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "edit.json").write_text(json.dumps(result, indent=1))
    (out / "edit.md").write_text(text)
    return result


if __name__ == "__main__":
    main()
