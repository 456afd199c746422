"""One object per model, called alike by the HTTP routes and the live stream, in LitServe's split:
``decode_request`` (what came over the wire -> model input), ``predict`` (through the model's
micro-batcher), ``encode_response`` (model output -> the answer's fields). The routes and
``service/live.py`` only translate between their wire and these, and keep the request's
lifetime (admission, the guard, the drain)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import BinaryIO

import anyio
import numpy as np
import torch

from ml.decoding import DecodedAudio
from ml.edit import ExpressionEditor, FaceFinder, edit_photo
from ml.enlarge import Enlarger
from ml.labels import fer_index
from ml.photo import Photo, load_photo
from ml.recognize import SpeakerNorm
from ml.voice import VoicePrint
from service.decoding import Decoder
from service.inference import MicroBatcher, emotion_fields, encode_photo, encode_png, face_fields

#: A single face up to this size is PNG-encoded on the generator's thread (one thread hop);
#: larger ones and grids are encoded on a worker thread, so they never hold up the next batch.
INLINE_PNG_MAX = 256


class SpeechModel:
    """The speech emotion model: a recording in, the 8 emotions' probabilities out."""

    def __init__(self, decoder: Decoder, batcher: MicroBatcher, max_audio_s: float,
                 speaker: Callable[[], SpeakerNorm]) -> None:
        self.decoder, self.batcher, self.max_audio_s = decoder, batcher, max_audio_s
        self.speaker = speaker  #: a new live stream's speaker normalisation (ml.recognize.SpeakerNorm)

    async def decode_request(self, file: BinaryIO) -> DecodedAudio:
        """An uploaded recording -> model input."""
        return await self.decoder.decode(file, max_duration_s=self.max_audio_s)

    async def predict(self, samples: np.ndarray, speaker: SpeakerNorm | None = None) -> np.ndarray:
        """(T,) mono samples at the model rate -> (8,) probabilities; with ``speaker``, heard as
        that live stream's next window."""
        probs, _ = await self.batcher.submit((samples, speaker, False))
        return np.asarray(probs)

    async def predict_voice(self, samples: np.ndarray, speaker: SpeakerNorm | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`predict`, and the speaker's (256,) embedding heard beside it (``VoiceModel``)."""
        probs, voice = await self.batcher.submit((samples, speaker, True))
        return np.asarray(probs), voice

    @staticmethod
    def encode_response(probs: np.ndarray, decoded: DecodedAudio | None = None) -> dict:
        """The answer's emotion fields; with ``decoded``, what the recording was too (/emotion)."""
        fields = emotion_fields(probs)
        if decoded is not None:
            fields |= {"duration_s": round(decoded.duration_s, 4), "sample_rate": decoded.input_sample_rate,
                       "channels": decoded.channels}
        return fields


class VoiceModel:
    """The speaker encoder's map: one speaker's embeddings (heard beside the emotion,
    ``SpeechModel.predict_voice``) -> the latent of their face (``ml.voice``)."""

    def __init__(self, voice: VoicePrint) -> None:
        self.voice = voice

    def latent(self, embeddings: list[np.ndarray]) -> torch.Tensor:
        """The face's (latent_dim,) latent for one speaker's embeddings (their mean, renormalised)."""
        e = np.mean(embeddings, axis=0)
        return self.voice.latents((e / max(float(np.linalg.norm(e)), 1e-12))[None])[0]


class FaceModel:
    """The face generator: an emotion and who to draw (a seed, or a voice's latent) in, a PNG out."""

    def __init__(self, batcher: MicroBatcher, enlarger: Enlarger) -> None:
        self.batcher, self.enlarger = batcher, enlarger  # the enlarger sizes grids (ml.enlarge)

    async def predict(self, emotion: str, seed: int | torch.Tensor, size: int = 48, count: int = 1) -> bytes:
        """PNG bytes: one face of ``size`` px, or a grid of ``count`` faces of seeds seed, seed+1, ...
        ``seed`` may be a voice's latent instead (``VoiceModel``; one face only)."""
        cls = fer_index(emotion)
        if count == 1 and size <= INLINE_PNG_MAX:  # the common case: the batch worker returns the PNG itself
            return await self.batcher.submit((cls, seed, size))
        faces = await asyncio.gather(*(self.batcher.submit((cls, (seed + i) % 2**32, None)) for i in range(count)))
        return await anyio.to_thread.run_sync(encode_png, self.enlarger, np.stack(faces), size)

    @staticmethod
    def encode_response(png: bytes, seed: int | None, face: str) -> dict:
        return face_fields(png, seed, face)


class PhotoModel:
    """The expression editor: an uploaded photo and an emotion in, the photo edited to it out (PNG).

    Decoding, finding the face, editing and encoding run on worker threads, at most ``max_edits``
    at once (each holds up to :data:`ml.photo.MAX_PIXELS` of RGB); OpenCV's cascades are not
    thread-safe, so each thread has its own :class:`~ml.edit.FaceFinder`. The photo lives in
    memory only, for the request's lifetime."""

    def __init__(self, editor: ExpressionEditor, max_edits: int) -> None:
        self.editor = editor
        self.limiter = anyio.CapacityLimiter(max_edits)
        self._local = threading.local()

    def _finder(self) -> FaceFinder:
        if not hasattr(self._local, "finder"):
            self._local.finder = FaceFinder()
        return self._local.finder

    async def decode_request(self, file: BinaryIO) -> Photo:
        """An uploaded photo -> upright RGB pixels (:class:`ml.photo.PhotoError` naming what is wrong)."""
        return await anyio.to_thread.run_sync(load_photo, file, limiter=self.limiter)

    def _edit(self, photo: Photo, emotion: str) -> bytes:
        edited, _ = edit_photo(self.editor, self._finder(), photo.rgb, emotion, photo.orientation)
        return encode_photo(edited)

    async def predict(self, photo: Photo, emotion: str) -> bytes:
        """PNG bytes: the photo, same size, its largest face edited to ``emotion``."""
        return await anyio.to_thread.run_sync(self._edit, photo, emotion, limiter=self.limiter)
