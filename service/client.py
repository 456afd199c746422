"""A small Python client for the Emoface API (httpx), synchronous and asynchronous.

    from service.client import Client

    with Client("http://localhost:8000") as emoface:
        face = emoface.speech_to_face("clip.wav")       # a path, bytes or an open binary file
        print(face.emotion, face.confidence, face.seed)
        open("face.png", "wb").write(face.png)
        print(emoface.emotion("clip.wav").probabilities)
        happy = emoface.generate("happy", seed=7, size=128)
        mine = emoface.edit("me.jpg", "surprised")             # your photo, its face edited; PNG bytes in .png
        me = emoface.speech_to_face("clip.wav", photo="me.jpg")  # your photo, edited to the emotion heard

    async with AsyncClient("http://localhost:8000") as emoface:   # the same methods, awaited
        result = await emoface.emotion("clip.wav")
        async for answer in emoface.live(pcm_chunks, rate=16000, seed=7):  # the live WebSocket
            print(answer.t, answer.emotion)

An error answer (problem+json) raises :class:`EmofaceError` with its status, problem type,
detail and ``Retry-After``. The client needs httpx (and websockets for ``live()``), both installed
with the package; ``python -m service.client live clip.wav`` streams a recording as if spoken
now. It lives in ``service/`` because the project's top level is the service and ``ml`` alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import httpx

Audio = Union[str, os.PathLike, bytes, IO[bytes]]
Photo = Audio  # a path, bytes or an open binary file too


class EmofaceError(Exception):
    """An error answer from the service (4xx or 5xx), from its problem+json body when it has one."""

    def __init__(self, status: int, problem_type: str, title: str, detail: str, retry_after: float | None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.problem_type, self.title, self.detail = status, problem_type, title, detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Emotion:
    emotion: str
    confidence: float
    probabilities: dict[str, float]
    duration_s: float
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Face:
    png: bytes
    emotion: str
    seed: int | None  # the seed drawn; None when the face is the voice's or your photo's
    confidence: float | None = None  # /speech-to-face only: the probability of ``emotion``
    face: str = "seed"  # whose face: "seed", "voice" (/speech-to-face without a seed) or "photo"


@dataclass(frozen=True)
class LiveAnswer:
    """One answer of the live stream: ``kind`` "face" (with the rest) or "silence" (``t`` only)."""
    kind: str
    t: float  # seconds of audio the stream had received
    emotion: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    seed: int | None = None  # None when the face is the speaker's own ("voice")
    face: str | None = None  # "voice" or "seed"
    png: bytes | None = None
    dropped: int = 0  # hops the server skipped since the last answer, while it was busy


def _part(content: Audio, default_name: str) -> tuple[str, bytes]:
    """(file name, bytes) of a path, bytes or an open binary file."""
    if isinstance(content, (str, os.PathLike)):
        path = Path(content)
        return path.name, path.read_bytes()
    if isinstance(content, bytes):
        return default_name, content
    return Path(getattr(content, "name", default_name)).name, content.read()


def _upload(audio: Audio | None = None, photo: Photo | None = None) -> dict[str, Any]:
    """The multipart fields ``file`` (the recording) and ``photo``, those given."""
    files = {"file": _part(audio, "audio")} if audio is not None else {}
    if photo is not None:
        files["photo"] = _part(photo, "photo")
    return {"files": files}


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        body = response.json()
    except ValueError:
        body = {}
    retry = response.headers.get("retry-after")
    raise EmofaceError(response.status_code, str(body.get("type", "about:blank")),
                       str(body.get("title", response.reason_phrase)), str(body.get("detail", response.text[:200])),
                       float(retry) if retry and re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,6})?", retry) else None)


def _emotion(response: httpx.Response) -> Emotion:
    body = _checked(response).json()
    return Emotion(**{k: body[k] for k in Emotion.__dataclass_fields__})


def _face(response: httpx.Response) -> Face:
    response = _checked(response)
    confidence = response.headers.get("x-emotion-confidence")
    seed = response.headers.get("x-seed")
    return Face(png=response.content, emotion=response.headers["x-emotion"], seed=int(seed) if seed else None,
                confidence=float(confidence) if confidence is not None else None,
                face=response.headers.get("x-face", "photo" if seed is None else "seed"))


def _generate_params(emotion: str, seed: int | None, size: int, count: int) -> dict[str, Any]:
    return {"emotion": emotion, "size": size, "count": count, **({} if seed is None else {"seed": seed})}


def _face_params(seed: int | None, size: int) -> dict[str, Any]:
    return {"size": size, **({} if seed is None else {"seed": seed})}


def _options(url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    return {"base_url": url, "timeout": timeout, "headers": {"X-API-Key": api_key} if api_key else {}}


class Client:
    """The service at ``url``; ``api_key`` when it requires one (``EMOFACE_API_KEY``)."""

    def __init__(self, url: str = "http://localhost:8000", *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.http = httpx.Client(**_options(url, api_key, timeout))

    def emotion(self, audio: Audio) -> Emotion:
        """Which of the 8 emotions the recording carries, with every probability."""
        return _emotion(self.http.post("/emotion", **_upload(audio)))

    def speech_to_face(self, audio: Audio, *, seed: int | None = None, size: int = 48, photo: Photo | None = None) -> Face:
        """The recording's emotion drawn as a face; without ``seed`` the speaker's own face (from the voice).
        With ``photo``, the face is that photo's, edited to the emotion heard (same size; no seed)."""
        return _face(self.http.post("/speech-to-face", params=_face_params(seed, size), **_upload(audio, photo)))

    def edit(self, photo: Photo, emotion: str) -> Face:
        """``photo`` with its face's expression changed to ``emotion``: the same size, as a PNG."""
        return _face(self.http.post("/edit", params={"emotion": emotion}, **_upload(photo=photo)))

    def generate(self, emotion: str, *, seed: int | None = None, size: int = 48, count: int = 1) -> Face:
        """A face (or a grid of ``count``) showing ``emotion``; the same arguments give the same PNG."""
        return _face(self.http.get("/generate", params=_generate_params(emotion, seed, size, count)))

    def ready(self) -> dict:
        return _checked(self.http.get("/ready")).json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """:class:`Client`'s methods, awaited, on one ``httpx.AsyncClient``."""

    def __init__(self, url: str = "http://localhost:8000", *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.http = httpx.AsyncClient(**_options(url, api_key, timeout))

    async def emotion(self, audio: Audio) -> Emotion:
        return _emotion(await self.http.post("/emotion", **_upload(audio)))

    async def speech_to_face(self, audio: Audio, *, seed: int | None = None, size: int = 48,
                             photo: Photo | None = None) -> Face:
        return _face(await self.http.post("/speech-to-face", params=_face_params(seed, size), **_upload(audio, photo)))

    async def edit(self, photo: Photo, emotion: str) -> Face:
        return _face(await self.http.post("/edit", params={"emotion": emotion}, **_upload(photo=photo)))

    async def generate(self, emotion: str, *, seed: int | None = None, size: int = 48, count: int = 1) -> Face:
        return _face(await self.http.get("/generate", params=_generate_params(emotion, seed, size, count)))

    async def ready(self) -> dict:
        return _checked(await self.http.get("/ready")).json()

    async def live(self, chunks: AsyncIterable[bytes] | Iterable[bytes], *, rate: int = 16_000, seed: int | None = None,
                   linger_s: float = 2.0) -> AsyncIterator[LiveAnswer]:
        """Stream 16-bit mono PCM ``chunks`` at ``rate`` to ``/ws/speech-to-face`` and yield its
        answers as they come; after the last chunk, answers are awaited for ``linger_s``. A close
        with an error code raises :class:`EmofaceError` (status: the WebSocket code)."""
        import websockets  # installed with uvicorn[standard]

        params = {"rate": rate, **({} if seed is None else {"seed": seed})}
        url = self.http.base_url.copy_with(scheme="wss" if self.http.base_url.scheme == "https" else "ws",
                                           path="/ws/speech-to-face", params=params)
        key = {k: v for k, v in self.http.headers.items() if k.lower() == "x-api-key"}
        async with websockets.connect(str(url), additional_headers=key, max_size=2**22) as ws:
            async def send() -> None:
                if isinstance(chunks, AsyncIterable):
                    async for chunk in chunks:
                        await ws.send(chunk)
                else:
                    for chunk in chunks:
                        await ws.send(chunk)
                await asyncio.sleep(linger_s)
                await ws.close()

            sender = asyncio.create_task(send())
            try:
                async for message in ws:
                    body = json.loads(message)
                    png = body.pop("image_png_base64", None)
                    yield LiveAnswer(kind=body.pop("type"), png=base64.b64decode(png) if png else None, **body)
            except websockets.ConnectionClosedError as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                raise EmofaceError(code, "websocket-close", "Live stream closed",
                                   closed.rcvd.reason if closed.rcvd else "connection lost", None) from None
            finally:
                sender.cancel()

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _pcm_chunks(path: str, speed: float):
    """The recording at ``path`` as 0.1 s messages of 16-bit mono PCM at 16 kHz, paced at
    ``speed`` x real time (0: as fast as possible). Decoded by the service's own decoder."""
    import numpy as np

    from ml import audio

    samples = audio.decode(path).samples  # mono, at audio.SAMPLE_RATE
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = 2 * audio.SAMPLE_RATE // 10

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(pcm), step):
            yield pcm[i:i + step]
            if speed:
                await asyncio.sleep(0.1 / speed)

    return chunks()


def main(argv: list[str] | None = None) -> None:
    """``python -m service.client live clip.wav``: stream a recording to the live route as if it
    were spoken now, and print each answer."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--url", default="http://localhost:8000")
    p.add_argument("--api-key")
    sub = p.add_subparsers(dest="command", required=True)
    live = sub.add_parser("live", help="stream a recording to /ws/speech-to-face and print the answers")
    live.add_argument("path")
    live.add_argument("--seed", type=int)
    live.add_argument("--speed", type=float, default=1.0, help="x real time (0: as fast as possible)")
    args = p.parse_args(argv)

    async def run() -> None:
        answers = dropped = 0
        async with AsyncClient(args.url, api_key=args.api_key) as emoface:
            async for a in emoface.live(_pcm_chunks(args.path, args.speed), rate=16_000, seed=args.seed):
                answers += 1
                dropped += a.dropped
                skipped = f"  ({a.dropped} hops dropped before it)" if a.dropped else ""
                if a.kind == "face":
                    who = "the voice's face" if a.face == "voice" else f"seed {a.seed}"
                    print(f"t={a.t:.1f} s  {a.emotion} {a.confidence:.2f}  {who}  {len(a.png)} B PNG{skipped}",
                          flush=True)
                else:
                    print(f"t={a.t:.1f} s  silence{skipped}", flush=True)
        # hops the server skipped while it was busy: a stream sent faster than it is heard loses them
        print(f"{answers} answers, {dropped} hops dropped", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
