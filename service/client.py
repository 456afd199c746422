"""A small Python client for the Emoface API (httpx), synchronous and asynchronous.

    from service.client import Client

    with Client("http://localhost:8000") as emoface:
        face = emoface.speech_to_face("clip.wav")       # a path, bytes or an open binary file
        print(face.emotion, face.confidence, face.seed)
        open("face.png", "wb").write(face.png)
        print(emoface.emotion("clip.wav").probabilities)
        happy = emoface.generate("happy", seed=7, size=128)

    async with AsyncClient("http://localhost:8000") as emoface:   # the same methods, awaited
        result = await emoface.emotion("clip.wav")

An error answer (problem+json) raises :class:`EmofaceError` with its status, problem type,
detail and ``Retry-After``. This module imports httpx only, so it runs wherever the service's
package is installed; it lives in ``service/`` because the project's top level is the service
and ``ml`` alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import httpx

Audio = Union[str, os.PathLike, bytes, IO[bytes]]


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
    seed: int
    confidence: float | None = None  # /speech-to-face only: the probability of ``emotion``


def _upload(audio: Audio) -> dict[str, Any]:
    """The multipart field ``file`` for a path, bytes or an open binary file."""
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        return {"files": {"file": (path.name, path.read_bytes())}}
    if isinstance(audio, bytes):
        return {"files": {"file": ("audio", audio)}}
    return {"files": {"file": (Path(getattr(audio, "name", "audio")).name, audio.read())}}


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
                       float(retry) if retry and retry.replace(".", "", 1).isdigit() else None)


def _emotion(response: httpx.Response) -> Emotion:
    body = _checked(response).json()
    return Emotion(**{k: body[k] for k in Emotion.__dataclass_fields__})


def _face(response: httpx.Response) -> Face:
    response = _checked(response)
    confidence = response.headers.get("x-emotion-confidence")
    return Face(png=response.content, emotion=response.headers["x-emotion"], seed=int(response.headers["x-seed"]),
                confidence=float(confidence) if confidence is not None else None)


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

    def speech_to_face(self, audio: Audio, *, seed: int | None = None, size: int = 48) -> Face:
        """The recording's emotion drawn as a face; without ``seed`` the recording's bytes choose it."""
        return _face(self.http.post("/speech-to-face", params=_face_params(seed, size), **_upload(audio)))

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

    async def speech_to_face(self, audio: Audio, *, seed: int | None = None, size: int = 48) -> Face:
        return _face(await self.http.post("/speech-to-face", params=_face_params(seed, size), **_upload(audio)))

    async def generate(self, emotion: str, *, seed: int | None = None, size: int = 48, count: int = 1) -> Face:
        return _face(await self.http.get("/generate", params=_generate_params(emotion, seed, size, count)))

    async def ready(self) -> dict:
        return _checked(await self.http.get("/ready")).json()

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
