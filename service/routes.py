"""HTTP routes: each handler decodes the request, awaits a model, encodes the response."""

from __future__ import annotations

import secrets
import tempfile
from contextlib import ExitStack
from typing import Annotated, BinaryIO

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import FormData, UploadFile

from ml import audio
from ml.labels import normalize_emotion
from ml.photo import Photo
from service.admission import Guard, ShuttingDown
from service.config import STATIC_DIR
from service.deps import Auth, Guarded, Models
from service.engines import Engines
from service.errors import Problem
from service.schemas import EmotionResult, Health, Ready, SpeechToFaceResult

router = APIRouter()
MAX_PIXELS = 4096 * 4096  # count x size^2 cap for a grid, so one request cannot ask for gigapixels

AUDIO_BODY = {
    "requestBody": {
        "required": True,
        "description": "A recording: multipart/form-data with the file in field `file`, or the raw bytes "
                       "with an `audio/*` or `video/*` Content-Type. WAV, FLAC, OGG, MP3 (libsndfile) and M4A/AAC, MP4, "
                       "MOV, WebM/Matroska Opus or Vorbis, 3GP AMR (FFmpeg, in a child process), "
                       "any sample rate and channel count, 0.5 s to 60 s.",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {"type": "string", "format": "binary"}}}},
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "audio/flac": {"schema": {"type": "string", "format": "binary"}},
            "audio/mp4": {"schema": {"type": "string", "format": "binary"}},
            "audio/webm": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
PROBLEM = {"content": {"application/problem+json": {"schema": {"type": "object"}}}}
AUDIO_ERRORS = {
    400: {"description": "malformed request", **PROBLEM}, 401: {"description": "API key missing or wrong", **PROBLEM},
    408: {"description": "the body did not arrive in time", **PROBLEM},
    413: {"description": "body over the size limit, or audio over the decoding budget", **PROBLEM},
    415: {"description": "not decodable audio", **PROBLEM},
    422: {"description": "invalid parameter, or audio too short, too long, silent", **PROBLEM},
    503: {"description": "models still loading, at capacity, or shutting down (see Retry-After)", **PROBLEM},
}
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG face (or grid of faces)"}}
Seed = Annotated[int | None, Query(ge=0, lt=2**32, description="fixes the face; random when absent")]
Size = Annotated[int, Query(ge=48, le=1024, description="width and height of each face in pixels")]


#: Request bodies larger than this are spooled to a temporary file of their own, not kept in RAM.
SPOOL_BYTES = 1 << 20


#: The upsampler's 48 -> 96 px pass, in single-48px-face units: 2.1 ms a face against the
#: generator's 2.9 ms on one core (``tests/perf/bench_models.py``, 2026-12-07), so about one.
UPSAMPLER_UNITS = 1


def face_cost(count: int, size: int) -> float:
    """What drawing ``count`` faces of ``size`` px costs, in single-48px-face units: the network's
    pass per face, the upsampler's above 48 px, plus resizing and PNG encoding, which grow with
    the pixels (a 16-face grid of 1024 px costs about 115 single faces)."""
    return count * (1 + (UPSAMPLER_UNITS if size > 48 else 0) + size * size / 200_000)


async def read_audio(request: Request, photo: bool = False) -> tuple[BinaryIO, BinaryIO | None]:
    """The uploaded recording as a file: multipart field ``file`` (spooled by the form parser), or
    a raw ``audio/*`` (or ``video/*``) body spooled here. Either way, over :data:`SPOOL_BYTES` it lives on disk.
    With ``photo``, also the multipart field ``photo`` when it is there (else None)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    picture: BinaryIO | None = None
    if ctype == "multipart/form-data":
        form = await request.form(max_files=2 if photo else 1, max_fields=8)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            fields = ", ".join(repr(k) for k in form.keys()) or "none"
            raise Problem(422, "invalid-parameter", "Invalid parameter",
                          f"file: multipart field 'file' with the recording is required (got fields: {fields})")
        if photo and "photo" in form:
            picture = form_photo(form)
        file: BinaryIO = upload.file
        empty = not upload.size
    elif ctype.startswith(("audio/", "video/")) or ctype == "application/octet-stream":  # video/*: its sound track
        file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        async for chunk in request.stream():
            file.write(chunk)
        empty = file.tell() == 0
    else:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send multipart/form-data (field 'file') or an audio/* or video/* body, not {ctype or 'no Content-Type'!r}")
    if empty:
        file.close()
        raise audio.EmptyAudioError("the uploaded recording is empty (0 bytes)")
    return file, picture


def form_photo(form: FormData) -> BinaryIO:
    """The multipart field ``photo`` as a file (422 when it is a plain text field)."""
    upload = form.get("photo")
    if not isinstance(upload, UploadFile):
        raise Problem(422, "invalid-parameter", "Invalid parameter",
                      "photo: multipart field 'photo' must be a file (JPEG, PNG or WebP)")
    return upload.file


async def recognise(request: Request, engines: Engines, guard: Guard, photos: ExitStack | None = None,
                    voice: bool = False) -> tuple[torch.Tensor | None, dict, Photo | None]:
    """The upload's /emotion result fields, and with ``voice`` the latent of its speaker's face
    (heard beside the emotion). With ``photos``, a photo uploaded beside the recording is admitted
    (into that stack, so it stays admitted until the caller's edit is done) and decoded first, so a
    bad photo is refused before the audio is heard; then no voice is heard."""
    speech = engines.speech
    picture = None
    with engines.clips.admit(1, engines.drain):
        file, photo_file = await guard.run(read_audio(request, photo=photos is not None))
        try:
            if photo_file is not None and photos is not None:
                photos.enter_context(engines.photos.admit(1, engines.drain))
                picture = await guard.run(engines.photo.decode_request(photo_file))
            guard.watch_disconnect()
            decoded = await guard.run(speech.decode_request(file))
        finally:
            file.close()
            if photo_file is not None:
                photo_file.close()
        if voice and picture is None:
            probs, heard = await guard.run(speech.predict_voice(decoded.samples))
            latent = engines.voice.latent([heard])
        else:
            probs, latent = await guard.run(speech.predict(decoded.samples)), None
    return latent, speech.encode_response(probs, decoded), picture


async def draw(engines: Engines, guard: Guard, emotion: str, seed: int | torch.Tensor, size: int, count: int = 1) -> bytes:
    with engines.face_work.admit(face_cost(count, size), engines.drain):
        guard.watch_disconnect()
        return await guard.run(engines.face.predict(emotion, seed, size, count))


@router.get("/health", response_model=Health, tags=["ops"])
async def health() -> Health:  # async: answered on the event loop, never queued behind worker threads
    """Liveness: 200 while the process runs."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, tags=["ops"], responses={503: {"description": "not ready", **PROBLEM}})
async def ready(engines: Models) -> Ready:
    """Readiness: 200 once the models are loaded and warmed up; 503 before, and from the moment
    SIGTERM arrives (the drain), so that a proxy or the kubelet takes the replica out of rotation."""
    if engines.drain.draining:
        raise ShuttingDown("the service is shutting down")
    return Ready(status="ready", device=str(engines.device), models=engines.models)


@router.get("/metrics", tags=["ops"], response_class=Response, dependencies=Auth)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latencies, errors per route, and model batch sizes. With an API
    key set it needs the key too (Prometheus sends it as a Bearer token: `authorization` in the scrape config)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


@router.post("/emotion", response_model=EmotionResult, tags=["models"], dependencies=Auth,
             openapi_extra=AUDIO_BODY, responses=AUDIO_ERRORS)
async def emotion(request: Request, engines: Models, guard: Guarded) -> dict:
    """Which emotion does this recording carry? One of the 8 RAVDESS emotions, with probabilities."""
    _, result, _ = await recognise(request, engines, guard)
    return result


@router.get("/generate", tags=["models"], dependencies=Auth, response_class=Response,
            responses={**PNG, **{k: v for k, v in AUDIO_ERRORS.items() if k in (401, 422, 503)}})
async def generate(
    engines: Models,
    guard: Guarded,
    emotion: Annotated[str, Query(description="neutral, calm, happy, sad, angry, fearful (fear), disgust, "
                                              "surprised (surprise); case-insensitive. Calm is drawn as neutral.",
                                  examples=["happy"])],
    seed: Seed = None,
    size: Size = 48,
    count: Annotated[int, Query(ge=1, le=64, description="faces in one grid, seeds seed, seed+1, ...")] = 1,
) -> Response:
    """Draw a face with the requested expression. The same emotion, seed and size give the same PNG bytes."""
    name = normalize_emotion(emotion)
    if count * size * size > MAX_PIXELS:
        raise Problem(422, "invalid-parameter", "Invalid parameter",
                      f"count, size: a grid of {count} faces of {size}px exceeds {MAX_PIXELS} pixels")
    seed = secrets.randbelow(2**32) if seed is None else seed
    png = await draw(engines, guard, name, seed, size, count)
    return Response(png, media_type="image/png", headers={"X-Emotion": name, "X-Seed": str(seed)})


@router.post("/speech-to-face", tags=["models"], dependencies=Auth, openapi_extra=AUDIO_BODY, response_class=Response,
             responses={**PNG, 200: {**PNG[200], "content": {"image/png": {}, "application/json": {
                 "schema": SpeechToFaceResult.model_json_schema()}}}, **AUDIO_ERRORS})
async def speech_to_face(request: Request, engines: Models, guard: Guarded, seed: Seed = None,
                         size: Size = 48) -> Response:
    """Recognise the emotion of a recording and draw a face showing it. Without `seed`, the person drawn
    comes from the voice: one speaker's recordings give one face, and the same recording always the
    same face (`X-Face: voice`). With `seed`, that seed's person (`X-Face: seed`, `X-Seed`).
    `Accept: application/json` returns the /emotion fields plus `seed` (null unless given), `face`
    and `image_png_base64`. With a multipart field `photo` beside `file`, the answer is that photo,
    its size kept (`seed` and `size` do not apply), with its face edited to the emotion heard, as
    /edit does (`X-Face: photo`)."""
    with ExitStack() as photos:
        latent, result, picture = await recognise(request, engines, guard, photos, voice=seed is None)
        headers = {"X-Emotion": result["emotion"], "X-Emotion-Confidence": f"{result['confidence']:.6f}"}
        if picture is not None:  # the face is the uploaded photo's, edited; there is no seed
            png, seed, face = await guard.run(engines.photo.predict(picture, result["emotion"])), None, "photo"
        elif seed is None:
            png, face = await draw(engines, guard, result["emotion"], latent, size), "voice"
        else:
            png, face = await draw(engines, guard, result["emotion"], seed, size), "seed"
            headers["X-Seed"] = str(seed)
        headers["X-Face"] = face
    if "application/json" in request.headers.get("accept", ""):
        body = {**result, **engines.face.encode_response(png, seed, face)}
        return JSONResponse(body, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


PHOTO_BODY = {
    "requestBody": {
        "required": True,
        "description": "A photo with a face: multipart/form-data with the image in field `photo`. JPEG, PNG or "
                       "WebP; 8-bit RGB or greyscale, still, opaque; 48 px to 16.8 megapixels; EXIF orientation "
                       "applied. The largest frontal face is edited.",
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["photo"],
                                                       "properties": {"photo": {"type": "string", "format": "binary"}}}}},
    }
}
PHOTO_ERRORS = {
    **{k: v for k, v in AUDIO_ERRORS.items() if k in (400, 401, 408, 503)},
    413: {"description": "body over the size limit, or a photo over 16.8 megapixels", **PROBLEM},
    415: {"description": "not a JPEG, PNG or WebP image, or one that cannot be decoded", **PROBLEM},
    422: {"description": "invalid parameter; no face found; a photo too small, animated, CMYK, 16-bit, "
                         "transparent or with an invalid EXIF orientation", **PROBLEM},
}


@router.post("/edit", tags=["models"], dependencies=Auth, openapi_extra=PHOTO_BODY, response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the photo, same size, edited"}, **PHOTO_ERRORS})
async def edit(
    request: Request,
    engines: Models,
    guard: Guarded,
    emotion: Annotated[str, Query(description="the expression to give the face; as for /generate", examples=["happy"])],
) -> Response:
    """Change the expression of the face in a photo to `emotion`: the same photo, same size, as a
    PNG. Only the face changes; the photo is kept in memory for the request only, never stored."""
    name = normalize_emotion(emotion)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send multipart/form-data with the photo in field 'photo', not {ctype or 'no Content-Type'!r}")
    with engines.photos.admit(1, engines.drain):
        form = await guard.run(request.form(max_files=1, max_fields=8))
        if "photo" not in form:
            fields = ", ".join(repr(k) for k in form.keys()) or "none"
            raise Problem(422, "invalid-parameter", "Invalid parameter",
                          f"photo: multipart field 'photo' with the image is required (got fields: {fields})")
        file = form_photo(form)
        try:
            guard.watch_disconnect()
            picture = await guard.run(engines.photo.decode_request(file))
        finally:
            file.close()
        png = await guard.run(engines.photo.predict(picture, name))
    return Response(png, media_type="image/png", headers={"X-Emotion": name})
