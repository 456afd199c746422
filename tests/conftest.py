"""Shared fixtures: tiny random checkpoints written by the project's own checkpoint code, the
committed RAVDESS fixture clips, and the real app (lifespan included) on either."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ml import checkpoint, codecs
from ml.codecs import CONTAINERS  # noqa: F401  (the tests' list of formats)
from ml.labels import EMOTIONS, FER_CLASSES
from ml.models.gan import Generator, GeneratorConfig
from ml.models.ser import SERHead, SERHeadConfig

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_AUDIO = ROOT / "tests" / "fixtures" / "audio"
SHIPPED_SER = ROOT / "weights" / "ser.pt"
SHIPPED_GENERATOR = ROOT / "weights" / "generator.pt"
SHIPPED_UPSAMPLER = ROOT / "weights" / "upsampler.pt"
DATA = Path(os.environ.get("EMOFACE_DATA", ROOT.parent / "shared" / "data"))
PROBLEM = "application/problem+json"
#: What the ``data`` marker needs: each corpus the data tests read, by the file that proves it is there.
CORPORA = {"ravdess": DATA / "ravdess" / "manifest.csv", "fer2013": DATA / "fer2013" / "fer2013.csv.gz"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.data`` tests need the corpora: without them they skip with the reason, except
    in CI (``CI`` set), where the corpora must be present and their absence is a failure."""
    if item.get_closest_marker("data") is None:
        return
    missing = [f"{name} ({path})" for name, path in CORPORA.items() if not path.is_file()]
    if missing:
        reason = f"corpora not found: {', '.join(missing)}; set EMOFACE_DATA to the folder holding them"
        if os.environ.get("CI"):
            pytest.fail(f"data test cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)


def fixture_clips() -> dict[str, Path]:
    """emotion -> committed fixture clip."""
    from ml.data.ravdess import parse_name

    return {parse_name(p).emotion: p for p in sorted(FIXTURE_AUDIO.glob("*.flac"))}


def assert_problem(r, status: int, slug: str | None = None, mentions: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    if slug:
        assert body["type"].endswith("/" + slug), body
    if mentions:
        assert mentions in body["detail"], body
    return body


def tiny_fer_csv(path: Path, gz: bool) -> Path:
    """A FER-2013 csv (or csv.gz) of random faces: 14 Training, 7 PublicTest, 5 PrivateTest rows."""
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for split, n in (("Training", 14), ("PublicTest", 7), ("PrivateTest", 5)):
        for i in range(n):
            rows.append(f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 2304)))},{split}")
    text = "\n".join(rows) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def wav_bytes(samples: np.ndarray, sr: int = 16_000, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def speechlike(seconds: float = 2.0, sr: int = 16_000, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-ish test signal: harmonics with a wobbling pitch, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Random SER and generator checkpoints in the real format: the SER is the shipped architecture
    (a head over the frozen Whisper encoder, which the package ships) with random head weights, so
    the service tests run the path production runs; the generator is a small one."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    ser = SERHead(SERHeadConfig())
    ser.fc.weight.data.normal_(std=0.05)  # answers that differ from clip to clip
    gen = Generator(GeneratorConfig(latent_dim=16, base_channels=4))
    for m in (ser, gen):
        m.eval()
    return (checkpoint.save(d / "ser.pt", ser, labels=EMOTIONS, data={"dataset": "random"}),
            checkpoint.save(d / "generator.pt", gen, labels=FER_CLASSES, data={"dataset": "random"}))


@functools.lru_cache(maxsize=None)
def voice_weights_for(gen: Path) -> Path:
    """A speaker-encoder file whose map fits ``gen``'s latent: the shipped one for the shipped
    generator's size, else the shipped network with a random orthonormal map to that size, written
    once beside ``gen``."""
    dim = checkpoint.read(gen)["config"]["latent_dim"]
    shipped = checkpoint.load(ROOT / "weights" / "voice.pt", arch="voice-encoder")
    if shipped.model.config.latent_dim == dim:
        return ROOT / "weights" / "voice.pt"
    path = gen.parent / f"voice_{dim}.pt"
    if not path.exists():
        from ml.models.voice import VoiceEncoder, VoiceEncoderConfig

        config = VoiceEncoderConfig(**{**shipped.meta["config"], "latent_dim": dim})
        model = VoiceEncoder(config)
        state = {k: v for k, v in shipped.model.state_dict().items() if k != "to_latent"}
        model.load_state_dict(state, strict=False)
        q, _ = torch.linalg.qr(torch.randn(config.embedding, dim, generator=torch.Generator().manual_seed(0)))
        model.to_latent.copy_(q.T)
        checkpoint.save(path, model, labels=[], data={"map": "random"})
    return path


def make_client(ser: Path, gen: Path, **overrides):
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app

    overrides.setdefault("voice_weights", voice_weights_for(gen))
    settings = Settings(ser_weights=ser, generator_weights=gen, _env_file=None, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def wait_ready(client) -> None:
    import time

    for _ in range(200):
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("app never became ready")


@pytest.fixture(scope="session")
def client(tiny_weights):
    """The real app, lifespan included, serving the tiny checkpoints."""
    with make_client(*tiny_weights) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="session")
def shipped_client():
    with make_client(SHIPPED_SER, SHIPPED_GENERATOR) as c:
        wait_ready(c)
        yield c


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ready(base: str, proc=None, seconds: float = 15.0) -> None:
    """Poll ``base``/ready until 200; fail if ``proc`` (a Popen) exits first or time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before it was ready")
        time.sleep(0.05)
    raise AssertionError(f"{base} not ready after {seconds} s")


@contextlib.contextmanager
def live_server(ser: Path, gen: Path, **overrides):
    """The real app served by uvicorn over real HTTP in a thread; yields (port, base URL)."""
    import threading

    from service.config import Settings
    from service.main import create_app
    from service.server import make_server

    port = free_port()
    overrides.setdefault("voice_weights", voice_weights_for(gen))
    settings = Settings(ser_weights=ser, generator_weights=gen, port=port, _env_file=None, **overrides)
    server = make_server(create_app(settings), settings, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base)
        yield port, base
    finally:
        server.should_exit = True
        thread.join(10)


def require_codec(kind: str) -> None:
    """Skip (outside CI) when this machine cannot encode ``kind``, naming the install line; in CI
    (``.ci/run`` installs every encoder) its absence is a failure."""
    if codecs.available(kind):
        return
    reason = f"no encoder for {kind} on this machine: {codecs.AMR_WB_INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


def container_bytes(wave: np.ndarray, rate: int, kind: str, channels: int = 1) -> bytes:
    """``wave`` (T,) float at ``rate`` as a file of ``kind`` (:data:`ml.codecs.CONTAINERS`). The
    AMR-WB encoder is Debian's libvo-amrwbenc0: .ci/run installs it; elsewhere its absence skips."""
    try:
        return codecs.encode(wave, rate, kind, channels=channels)
    except codecs.CodecUnavailable as exc:
        if os.environ.get("CI"):
            raise AssertionError(f"{exc} (.ci/run installs it)") from None
        pytest.skip(str(exc))
