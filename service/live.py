"""The live route: a WebSocket that hears a voice as it speaks and answers with a face.

    ws://localhost:8000/ws/speech-to-face?rate=16000&seed=7   (&api_key=... when a key is set)

The client sends binary messages of 16-bit little-endian mono PCM at ``rate`` (8-48 kHz), any
length up to :data:`MAX_MESSAGE_BYTES`. For each :data:`HOP_S` of audio received, the server
hears the last :data:`WINDOW_S` and answers with one JSON text message::

    {"type": "face", "t": 3.0, "emotion": "happy", "confidence": 0.61, "probabilities": {...},
     "seed": 7, "image_png_base64": "...", "dropped": 0}

``probabilities`` are smoothed over time (an exponential average, :data:`SMOOTHING`), so the face
does not flicker on every hop; ``emotion`` is their most probable. The face keeps one identity,
``seed`` (given, or random), for the whole connection. A window that is digitally silent gets
``{"type": "silence", "t": ...}``. The windows go through the same micro-batchers as the HTTP
routes, one at a time per stream: a hop that comes while the last is still being heard is
dropped (counted in ``dropped``), so a slow model never builds a queue.

Closing codes: 1000 the stream reached ``EMOFACE_STREAM_MAX_S``; 1001 idle for
``EMOFACE_STREAM_IDLE_S``, or the service is shutting down; 1003 a text message; 1007 a binary
message of an odd length (not 16-bit samples); 1008 a bad ``rate`` or ``seed``, a missing or
wrong API key, or a client that stopped reading; 1009 a message over :data:`MAX_MESSAGE_BYTES`;
1011 the model failed; 1013 the service is not ready or holds ``EMOFACE_MAX_STREAMS`` streams
already. The reason says which. A client that stops reading costs its socket buffers at most:
once they are full, the next answer waits :data:`SEND_TIMEOUT_S` and the stream is closed (and
in any case at ``EMOFACE_STREAM_MAX_S``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import secrets
import time

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ml import audio
from ml.labels import EMOTIONS, fer_index
from service.deps import key_matches
from service.engines import Engines

log = logging.getLogger(__name__)
router = APIRouter()

WINDOW_S = 3.0
HOP_S = 1.0
SMOOTHING = 0.5  # weight of the newest window in the running average of the probabilities
MAX_MESSAGE_BYTES = 64 * 1024
MIN_RATE, MAX_RATE = 8_000, 48_000
SEND_TIMEOUT_S = 5.0  # a client that stops reading is closed, not waited on


class StreamClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class LiveStream:
    """One connection's audio: resampled to 16 kHz as it comes, the last :data:`WINDOW_S` kept;
    hops are counted in the samples as sent."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.resampler = None if rate == audio.SAMPLE_RATE else audio.resample_stream(rate)
        self.window = np.zeros(0, np.float32)
        self.received = 0  # samples as sent, at ``rate``
        self.next_hop = int(HOP_S * rate)
        self.smoothed: np.ndarray | None = None
        self.dropped = 0

    def feed(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise StreamClosed(1007, "binary messages must hold 16-bit samples (an even number of bytes)")
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        y = x if self.resampler is None else self.resampler.resample_chunk(x)
        self.received += len(x)
        self.window = np.concatenate([self.window, y])[-int(WINDOW_S * audio.SAMPLE_RATE):]

    def hop_due(self) -> bool:
        """True once per :data:`HOP_S` of audio received (a long message counts as one hop)."""
        if self.received < self.next_hop:
            return False
        while self.next_hop <= self.received:
            self.next_hop += int(HOP_S * self.rate)
        return True

    @property
    def seconds(self) -> float:
        return round(self.received / self.rate, 3)

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        self.smoothed = probs if self.smoothed is None else SMOOTHING * probs + (1 - SMOOTHING) * self.smoothed
        return self.smoothed


def _param(ws: WebSocket, name: str, default: int | None, low: int, high: int) -> int | None:
    value = ws.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise StreamClosed(1008, f"{name} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


@router.websocket("/ws/speech-to-face")
async def speech_to_face_live(ws: WebSocket) -> None:
    engines: Engines | None = ws.app.state.engines
    await ws.accept()
    try:
        if engines is None or not engines.ready.is_set() or engines.drain.draining:
            raise StreamClosed(1013, "the service is not ready; retry shortly")
        given = ws.headers.get("x-api-key") or ws.query_params.get("api_key")
        if not key_matches(engines.settings.api_key, given):
            raise StreamClosed(1008, "a valid API key is required (X-API-Key header or api_key parameter)")
        rate = _param(ws, "rate", audio.SAMPLE_RATE, MIN_RATE, MAX_RATE)
        seed = _param(ws, "seed", None, 0, 2**32 - 1)
        seed = secrets.randbelow(2**32) if seed is None else seed
        if engines.streams >= engines.settings.max_streams:
            raise StreamClosed(1013, f"the service holds {engines.settings.max_streams} live streams; retry shortly")
        engines.streams += 1
        try:
            await _serve(ws, engines, LiveStream(rate), seed)
        finally:
            engines.streams -= 1
    except StreamClosed as closed:
        await _close(ws, closed.code, closed.reason)
    except WebSocketDisconnect:
        pass


async def _serve(ws: WebSocket, engines: Engines, stream: LiveStream, seed: int) -> None:
    settings = engines.settings
    end = time.monotonic() + settings.stream_max_s
    pending: asyncio.Task | None = None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise StreamClosed(1000, f"the stream reached its limit of {settings.stream_max_s:g} s")
            try:
                message = await asyncio.wait_for(ws.receive(), min(settings.stream_idle_s, left))
            except asyncio.TimeoutError:
                if time.monotonic() >= end:
                    continue
                raise StreamClosed(1001, f"nothing received for {settings.stream_idle_s:g} s") from None
            if message["type"] == "websocket.disconnect":
                return
            if engines.drain.draining:
                raise StreamClosed(1001, "the service is shutting down")
            if message.get("bytes") is None:
                raise StreamClosed(1003, "send binary messages of 16-bit PCM; text is not accepted")
            if len(message["bytes"]) > MAX_MESSAGE_BYTES:
                raise StreamClosed(1009, f"a message holds at most {MAX_MESSAGE_BYTES} bytes")
            stream.feed(message["bytes"])
            if pending is not None and pending.done():
                pending.result()  # a StreamClosed from the last window ends the stream here
                pending = None
            if stream.hop_due() and len(stream.window) >= audio.MIN_DURATION_S * audio.SAMPLE_RATE:
                if pending is None:
                    pending = asyncio.create_task(_answer(ws, engines, stream, seed, stream.window.copy()))
                else:
                    stream.dropped += 1
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


async def _answer(ws: WebSocket, engines: Engines, stream: LiveStream, seed: int, window: np.ndarray) -> None:
    t = stream.seconds
    if math.sqrt(float(np.mean(window.astype(np.float64) ** 2))) < audio.SILENCE_RMS:
        await _send(ws, {"type": "silence", "t": t})
        return
    try:
        probs = np.asarray(await engines.ser.submit(window))
        smoothed = stream.smooth(probs)
        best = int(np.argmax(smoothed))
        png = await engines.faces.submit((fer_index(EMOTIONS[best]), seed, 48))
    except Exception as exc:  # the model failed this window: this stream ends, the others go on
        log.exception("live stream: the models failed a window")
        raise StreamClosed(1011, f"the models failed: {type(exc).__name__}") from exc
    dropped, stream.dropped = stream.dropped, 0
    await _send(ws, {"type": "face", "t": t, "emotion": EMOTIONS[best], "confidence": round(float(smoothed[best]), 6),
                     "probabilities": {e: round(float(p), 6) for e, p in zip(EMOTIONS, smoothed)}, "seed": seed,
                     "image_png_base64": base64.b64encode(png).decode(), "dropped": dropped})


async def _send(ws: WebSocket, body: dict) -> None:
    try:
        await asyncio.wait_for(ws.send_json(body), SEND_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise StreamClosed(1008, f"the client read nothing for {SEND_TIMEOUT_S:g} s") from None


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    try:
        await ws.close(code, reason)
    except (RuntimeError, WebSocketDisconnect):  # already closed by the client
        pass
