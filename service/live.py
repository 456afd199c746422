"""The live route: a WebSocket that hears a voice as it speaks and answers with a face.

    ws://localhost:8000/ws/speech-to-face?rate=16000&seed=7

The client sends binary messages of 16-bit little-endian mono PCM at ``rate`` (8-48 kHz), any
length up to :data:`MAX_MESSAGE_BYTES`. For each :data:`HOP_S` of audio received, the server
hears the last :data:`WINDOW_S` and answers with one JSON text message::

    {"type": "face", "t": 3.0, "emotion": "happy", "confidence": 0.61, "probabilities": {...},
     "seed": 7, "face": "seed", "image_png_base64": "...", "dropped": 0}

A stream is one speaker: its windows are heard relative to that speaker's running mean
(``ml.recognize.SpeakerNorm``), which took the held-out UA from 45.3% clip by clip to 52.7%
once a stream has heard a few windows. ``probabilities`` are smoothed over time (an exponential
average, :data:`SMOOTHING`), so the face does not flicker on every hop; ``emotion`` is their most probable. The face keeps one
person: ``seed``'s when given, else the speaker's own face (``"face": "voice"``, ``"seed": null``),
from the mean voice of the first :data:`VOICE_WINDOWS` windows heard, then kept for the whole
connection, as ``/speech-to-face`` draws one face per voice. A window that is digitally silent gets
``{"type": "silence", "t": ...}``. The windows go through the same micro-batchers as the HTTP
routes, one at a time per stream: a hop that comes while the last is still being heard is
dropped (counted in ``dropped``), so a slow model never builds a queue.

**Before the handshake completes** the API key (when ``EMOFACE_API_KEY`` is set: the
``X-API-Key`` header, ``Authorization: Bearer``, or, from a browser, which cannot set headers, the
subprotocol ``emoface-key.<the key in unpadded base64url>`` beside ``emoface``) and the ``Origin``
(the service's own page, or one of ``EMOFACE_CORS_ORIGINS``; clients that send none, not browsers,
pass) are checked. A refusal is an HTTP problem+json answer to the handshake, 401 or 403: no
WebSocket is opened and no frame is answered. ``rate`` and ``seed`` are ASCII digits only.

**Slots.** At most ``EMOFACE_MAX_STREAMS`` streams, ``EMOFACE_STREAM_MAX_PER_CLIENT`` of them per
client address. A stream must send audio at ``EMOFACE_STREAM_MIN_RATE`` of real time at least,
counted from :data:`GRACE_S` after it opened: one that sends less is closed with 1008, and when
the slots are full a new stream takes the slot of such a starving one at once.

Closing codes: 1000 the stream reached ``EMOFACE_STREAM_MAX_S``; 1001 idle for
``EMOFACE_STREAM_IDLE_S``; 1012 the service is shutting down (SIGTERM: reconnect, and behind a
proxy the new stream reaches another replica; uvicorn closes open streams with the same code);
1003 a text message; 1007 a binary
message of an odd length (not 16-bit samples); 1008 a bad ``rate`` or ``seed``, a stream too slow
(or evicted for being so), or a client that stopped reading; 1009 a message over
:data:`MAX_MESSAGE_BYTES`; 1011 the model failed; 1013 the service is not ready or its slots (or
this client's) are taken. The reason says which. A client that stops reading costs its socket
buffers at most: once they are full, the next answer waits :data:`SEND_TIMEOUT_S` and the stream
is closed (and in any case at ``EMOFACE_STREAM_MAX_S``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ml import audio, decoding
from ml.recognize import SpeakerNorm
from service.admission import GRACE_S, NoSlot, Slot
from service.deps import key_matches
from service.engines import Engines
from service.errors import problem_response

log = logging.getLogger(__name__)
router = APIRouter()

WINDOW_S = 3.0
HOP_S = 1.0
VOICE_WINDOWS = 3  # windows whose voice makes the stream's face; after them it is fixed
SMOOTHING = 0.5  # weight of the newest window in the running average of the probabilities
MAX_MESSAGE_BYTES = 64 * 1024
MIN_RATE, MAX_RATE = 8_000, 48_000
SEND_TIMEOUT_S = 5.0  # a client that stops reading is closed, not waited on
SUBPROTOCOL = "emoface"
KEY_PROTOCOL = "emoface-key."  # + the API key in unpadded base64url: how a browser sends it


class StreamClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class LiveStream:
    """One connection's audio: resampled to 16 kHz as it comes, the last :data:`WINDOW_S` kept;
    hops are counted in the samples as sent."""

    def __init__(self, rate: int, speaker: SpeakerNorm) -> None:
        self.rate, self.speaker = rate, speaker  # the stream is one speaker: its windows are heard as such
        self.resampler = None if rate == audio.SAMPLE_RATE else audio.resample_stream(rate)
        self.window = np.zeros(0, np.float32)
        self.received = 0  # samples as sent, at ``rate``
        self.next_hop = int(HOP_S * rate)
        self.smoothed: np.ndarray | None = None
        self.dropped = 0
        self.voices: list[np.ndarray] = []  # the speaker embeddings of the first VOICE_WINDOWS windows
        self.latent = None  # the voice's face (their mean's latent), once one window was heard

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
    # ASCII digits only (str.isdigit also takes "²" and Arabic-Indic digits), and short: int() of a
    # 4,300-digit string raises rather than answer
    if not (len(value) <= 10 and value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise StreamClosed(1008, f"{name} must be an integer from {low} to {high}, not {value[:20]!r}")
    return int(value)


def _offered_key(ws: WebSocket) -> str | None:
    """The API key the handshake carries: header, Bearer, or a browser's subprotocol token."""
    if key := ws.headers.get("x-api-key"):
        return key
    auth = ws.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:]
    for token in ws.scope.get("subprotocols", []):
        if token.startswith(KEY_PROTOCOL):
            try:
                return base64.urlsafe_b64decode(token[len(KEY_PROTOCOL):] + "==").decode()
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def _origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """Browsers always send Origin on a WebSocket: it must be this service's own page or a listed
    one. Other clients send none and are judged by the key alone."""
    origin = ws.headers.get("origin")
    if origin is None or origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == ws.headers.get("host", "").lower()


async def _refuse(ws: WebSocket, status: int, slug: str, title: str, detail: str) -> None:
    """Answer the handshake with problem+json (ASGI's denial response), or, where the server
    cannot, close before accepting (an HTTP 403). Either way no WebSocket opens."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(problem_response(status, slug, title, detail, ws.url.path))
    else:
        await ws.close(1008, detail)


@router.websocket("/ws/speech-to-face")
async def speech_to_face_live(ws: WebSocket) -> None:
    engines: Engines | None = ws.app.state.engines
    settings = ws.app.state.settings
    if not key_matches(settings.api_key, _offered_key(ws)):
        await _refuse(ws, 401, "unauthorized", "Unauthorized", "a valid API key is required (X-API-Key, Bearer, "
                      f"or the subprotocol {KEY_PROTOCOL}<key in base64url>)")
        return
    if not _origin_allowed(ws, settings.cors_origins):
        await _refuse(ws, 403, "forbidden-origin", "Origin not allowed",
                      f"pages from {ws.headers.get('origin', '')[:100]!r} may not open streams here")
        return
    offered = ws.scope.get("subprotocols", [])
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        if engines is None or not engines.ready.is_set() or engines.drain.draining:
            raise StreamClosed(1013, "the service is not ready; retry shortly")
        rate = _param(ws, "rate", audio.SAMPLE_RATE, MIN_RATE, MAX_RATE)
        seed = _param(ws, "seed", None, 0, 2**32 - 1)  # None: the speaker's face
        try:
            slot = engines.streams.open(ws.client.host if ws.client else "")
        except NoSlot as full:
            raise StreamClosed(1013, str(full)) from None
        try:
            await _serve(ws, engines, LiveStream(rate, engines.speech.speaker()), seed, slot)
        finally:
            engines.streams.close(slot)
    except StreamClosed as closed:
        await _close(ws, closed.code, closed.reason)
    except WebSocketDisconnect:
        pass


async def _serve(ws: WebSocket, engines: Engines, stream: LiveStream, seed: int | None, slot: Slot) -> None:
    settings = engines.settings
    end = time.monotonic() + settings.stream_max_s
    pending: asyncio.Task | None = None
    evicted = asyncio.ensure_future(slot.evicted.wait())
    last = time.monotonic()  # when the last message came
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                raise StreamClosed(1000, f"the stream reached its limit of {settings.stream_max_s:g} s")
            if now - last >= settings.stream_idle_s:
                raise StreamClosed(1001, f"nothing received for {settings.stream_idle_s:g} s")
            if slot.starving(now, settings.stream_min_rate):
                raise StreamClosed(1008, f"the stream sent {slot.audio_s:.1f} s of audio in {now - slot.opened:.0f} s; "
                                         f"at least {settings.stream_min_rate:g} of real time is needed")
            receive = asyncio.ensure_future(ws.receive())
            await asyncio.wait({receive, evicted}, timeout=min(end - now, last + settings.stream_idle_s - now, GRACE_S),
                               return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                if evicted.done():
                    raise StreamClosed(1008, "the stream sent too little audio and its slot went to a new one")
                continue  # the stream's end, idleness and rate are checked at the top
            last = time.monotonic()
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            if engines.drain.draining:
                raise StreamClosed(1012, "the service is shutting down; reconnect")
            if message.get("bytes") is None:
                raise StreamClosed(1003, "send binary messages of 16-bit PCM; text is not accepted")
            if len(message["bytes"]) > MAX_MESSAGE_BYTES:
                raise StreamClosed(1009, f"a message holds at most {MAX_MESSAGE_BYTES} bytes")
            stream.feed(message["bytes"])
            slot.audio_s = stream.received / stream.rate
            if pending is not None and pending.done():
                pending.result()  # a StreamClosed from the last window ends the stream here
                pending = None
            if stream.hop_due() and len(stream.window) >= audio.MIN_DURATION_S * audio.SAMPLE_RATE:
                if pending is None:
                    pending = asyncio.create_task(_answer(ws, engines, stream, seed, stream.window.copy()))
                else:
                    stream.dropped += 1
    finally:
        evicted.cancel()
        if pending is not None and not pending.done():
            pending.cancel()


async def _answer(ws: WebSocket, engines: Engines, stream: LiveStream, seed: int | None, window: np.ndarray) -> None:
    t = stream.seconds
    if decoding.is_silent(window):
        await _send(ws, {"type": "silence", "t": t})
        return
    try:
        if seed is None and len(stream.voices) < VOICE_WINDOWS:
            probs, voice = await engines.speech.predict_voice(window, stream.speaker)
            stream.voices.append(voice)
            stream.latent = engines.voice.latent(stream.voices)
        else:
            probs = await engines.speech.predict(window, stream.speaker)
        fields = engines.speech.encode_response(stream.smooth(probs))
        png = await engines.face.predict(fields["emotion"], stream.latent if seed is None else seed)
    except Exception as exc:  # the model failed this window: this stream ends, the others go on
        log.exception("live stream: the models failed a window")
        raise StreamClosed(1011, f"the models failed: {type(exc).__name__}") from exc
    dropped, stream.dropped = stream.dropped, 0
    face = engines.face.encode_response(png, seed, "voice" if seed is None else "seed")
    await _send(ws, {"type": "face", "t": t, **fields, **face, "dropped": dropped})


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
