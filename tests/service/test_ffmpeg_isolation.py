"""The FFmpeg path against uploads made to attack it: playlists and descriptions that name other
files and sockets, memory bombs, and requests abandoned mid-decode. Each fails its request alone
with a 4xx, reads no file, opens no socket, and leaves no child running."""

import asyncio
import os
import time

import pytest

from ml import decoding as dec
from service import decoding
from tests import hostile
from tests.conftest import assert_problem, fixture_clips, make_client, wait_ready
from tests.service.stand_in_decoders import hang, hog, write_file

FIXTURE = fixture_clips()["happy"].relative_to(fixture_clips()["happy"].parents[3])  # a path relative to the root
REFUSED = (415, "undecodable-audio")
PROBES = {  # name -> (body, status, problem type)
    "concat, relative path": (hostile.concat(str(FIXTURE)), *REFUSED),
    "concat, absolute path": (hostile.concat(str(fixture_clips()["happy"])), *REFUSED),
    "concat, a folder": (hostile.concat("tests"), *REFUSED),
    "sdp, RTP on a UDP port": (hostile.SDP, *REFUSED),
    "hls playlist": (hostile.hls(str(FIXTURE)), *REFUSED),
    "png 16000 x 16000": (hostile.huge_png(), *REFUSED),
    # FFmpeg's index allocation fails under the child's address-space limit; the file then decodes
    # to nothing (unconfined, opening it took 1.5 GB)
    "m4a declaring 40 M samples": (hostile.m4a_sample_table_bomb(), 415, "undecodable-audio"),
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probes_get_a_plain_4xx_fast(shipped_client, name):
    """Refused by the demuxer allow-list before anything is opened, or held by the child's memory
    limit (the M4A's index would take 1.5 GB): a stable type, and a detail with nothing of FFmpeg's
    (no path, no errno)."""
    body, status, slug = PROBES[name]
    t0 = time.perf_counter()
    r = shipped_client.post("/emotion", content=body, headers={"Content-Type": "audio/mp4"})
    problem = assert_problem(r, status, slug)
    assert time.perf_counter() - t0 < 5, "an SDP body used to wait for RTP until the child was killed"
    if not name.startswith("m4a"):
        assert problem["detail"] == dec.FFMPEG_REFUSED
    assert not any(leak in problem["detail"] for leak in ("Errno", "directory", "<none>", str(FIXTURE)))


def _run(coro):
    return asyncio.run(coro)


def pool(max_ffmpeg: int = 1, wait_s: float = 5.0, timeout_s: float = 5.0) -> decoding.Decoder:
    return decoding.Decoder(max_decodes=1, max_ffmpeg=max_ffmpeg, ffmpeg_wait_s=wait_s, timeout_s=timeout_s,
                            memory_bytes=160 << 20)


@pytest.mark.parametrize("stand_in, error, mentions", [
    (hog, dec.AudioTooLargeError, "more memory"),  # the address-space limit, not the machine's memory
    (write_file, dec.AudioDecodeError, "not a recording"),  # no new descriptor: open() fails
])
def test_the_child_runs_under_its_limits(monkeypatch, stand_in, error, mentions):
    monkeypatch.setattr(decoding, "DECODER", stand_in)
    with pytest.raises(error, match=mentions):
        _run(pool().decode_ffmpeg(b"x", max_duration_s=60))


def test_a_cancelled_decode_kills_its_child_before_its_slot_is_free(monkeypatch):
    monkeypatch.setattr(decoding, "DECODER", hang)
    decoder = pool(timeout_s=60)

    async def abandon() -> tuple[int, bool, bool]:
        task = asyncio.ensure_future(decoder.decode_ffmpeg(b"x", max_duration_s=60))
        for _ in range(200):  # until the child runs
            await asyncio.sleep(0.05)
            if decoder.children:
                break
        (child,) = decoder.children
        pid = child.process.pid
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, child.process.is_alive(), decoder.ffmpeg_slots.locked()

    pid, alive, slot_taken = _run(abandon())
    assert not alive and not slot_taken and not decoder.children
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: not even a zombie


def test_children_never_outnumber_their_limit_and_a_long_wait_is_a_503(monkeypatch):
    monkeypatch.setattr(decoding, "DECODER", hang)
    decoder = pool(max_ffmpeg=2, wait_s=0.5, timeout_s=1.5)
    most = 0

    async def many() -> list[object]:
        nonlocal most
        tasks = [asyncio.ensure_future(decoder.decode_ffmpeg(b"x", max_duration_s=60)) for _ in range(6)]
        while not all(t.done() for t in tasks):
            most = max(most, len(decoder.children))
            await asyncio.sleep(0.01)
        return [t.exception() for t in tasks]

    errors = _run(many())
    assert most == 2
    assert sum(isinstance(e, decoding.DecoderBusy) for e in errors) == 4  # waited 0.5 s, both slots still taken
    assert sum(isinstance(e, decoding.DecoderFailedError) for e in errors) == 2  # the two that ran: killed at 1.5 s


def test_flac_is_not_queued_behind_ffmpeg(tiny_weights, monkeypatch):
    """Every FFmpeg slot held by a hanging decode: a FLAC upload still answers at once."""
    import threading

    monkeypatch.setattr(decoding, "DECODER", hang)
    flac = fixture_clips()["happy"].read_bytes()
    with make_client(*tiny_weights, max_ffmpeg_decodes=1, decode_timeout_s=4.0) as client:
        wait_ready(client)
        hostile = threading.Thread(target=client.post, args=("/emotion",),
                                   kwargs={"content": b"\x1aE\xdf\xa3" + bytes(64), "headers": {"Content-Type": "audio/webm"}})
        hostile.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        r = client.post("/emotion", content=flac, headers={"Content-Type": "audio/flac"})
        took = time.perf_counter() - t0
        hostile.join(10)
    assert r.status_code == 200 and took < 2.0


def test_a_non_ascii_retry_after_is_no_crash_in_the_client():
    import httpx

    from service.client import EmofaceError, _checked

    response = httpx.Response(503, headers=[(b"Retry-After", "\u00b2".encode())], json={"title": "busy", "detail": "x"},
                              request=httpx.Request("GET", "http://x/generate"))
    with pytest.raises(EmofaceError) as raised:
        _checked(response)
    assert raised.value.retry_after is None


def test_a_child_started_from_a_script_imports_no_torch(tmp_path):
    """Started from a main script (as the ``emoface`` console script starts the service), a child
    would re-import that script, and torch with it; ``as_package_main`` prevents it."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = tmp_path / "emoface_like.py"
    script.write_text(
        "import asyncio, torch\n"
        "from service.__main__ import as_package_main\n"
        "from service import decoding\n"
        "from tests.service.stand_in_decoders import modules\n"
        "if __name__ == '__main__':\n"
        "    as_package_main()\n"
        "    decoding.DECODER = modules\n"
        "    d = decoding.Decoder(max_decodes=1, max_ffmpeg=1, ffmpeg_wait_s=5, timeout_s=30, memory_bytes=160 << 20)\n"
        "    print('torch' in asyncio.run(d.decode_ffmpeg(b'x', max_duration_s=60)))\n")
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("delay_s", [0, 0.001, 0.005, 0.02, 0.1, 0.3])
def test_a_request_cancelled_at_any_moment_leaves_no_child(monkeypatch, delay_s):
    """Cancelled while waiting for a slot, while its child starts (the first start also starts the
    forkserver), or while the child decodes: no child outlives it, and the slot comes back."""
    import multiprocessing

    monkeypatch.setattr(decoding, "DECODER", hang)
    decoder = pool(timeout_s=60)

    async def cancel_after() -> bool:
        task = asyncio.ensure_future(decoder.decode_ffmpeg(b"x", max_duration_s=60))
        await asyncio.sleep(delay_s)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # a start in progress finishes, kills its child, then frees the slot
            if not decoder.ffmpeg_slots.locked():
                break
            await asyncio.sleep(0.05)
        return decoder.ffmpeg_slots.locked()

    assert not _run(cancel_after())
    assert multiprocessing.active_children() == [] and not decoder.children
