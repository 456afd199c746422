"""RFC 9457 problem details: the one place exceptions become HTTP error responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ml import audio, photo
from ml.labels import UnknownEmotionError
from service.admission import ClientGone, ShuttingDown
from service.inference import DeadlineExceeded, InvalidOutput, Overloaded

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://emoface.dev/problems/"


class Problem(Exception):
    """An error with a stable ``type`` slug, an HTTP status and a human ``detail``."""

    def __init__(self, status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.headers = status, slug, title, detail, headers


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "body-too-large", "Request body too large",
                         f"the request body exceeds the limit of {limit} bytes")


class RequestTimeout(Problem):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, "request-timeout", "Request body too slow",
                         f"no part of the request body arrived for {seconds:g} s", headers={"Connection": "close"})


#: A client that closed its connection before its answer (nginx's code): not an error of ours,
#: logged at INFO, and never counted in the error metrics. Nobody reads the response.
CLIENT_CLOSED = 499


class NotReady(Problem):
    def __init__(self) -> None:
        super().__init__(503, "not-ready", "Service not ready", "the models are still loading; retry shortly",
                         headers={"Retry-After": "1"})


#: ml exceptions -> (status, slug, title). Decoding failures are 415; audio that decodes but
#: cannot be used is 422, each with its own type so clients can tell them apart.
_AUDIO_PROBLEMS: dict[type[Exception], tuple[int, str, str]] = {
    audio.AudioDecodeError: (415, "undecodable-audio", "Body is not decodable audio"),
    audio.EmptyAudioError: (422, "empty-audio", "Audio holds no samples"),
    audio.InvalidSamplesError: (422, "invalid-samples", "Audio holds unusable samples"),
    audio.AudioTooShortError: (422, "audio-too-short", "Audio too short"),
    audio.AudioTooLongError: (422, "audio-too-long", "Audio too long"),
    audio.SilentAudioError: (422, "silent-audio", "Audio is silent"),
    audio.AudioTooLargeError: (413, "audio-too-large", "Audio over the decoding budget"),
    audio.UnsupportedSampleRateError: (422, "unsupported-sample-rate", "Unsupported sample rate"),
}

_AUDIO_DEFAULT = (422, "unusable-audio", "Audio cannot be used")

#: ml.photo exceptions -> (status, slug, title), as for audio: 415 when the bytes are not a photo we
#: decode, 413 when it is too large, 422 when it decodes but cannot be edited.
_PHOTO_PROBLEMS: dict[type[Exception], tuple[int, str, str]] = {
    photo.UndecodableImageError: (415, "undecodable-image", "Photo is not a decodable JPEG, PNG or WebP image"),
    photo.TruncatedImageError: (415, "truncated-image", "Photo data is incomplete"),
    photo.ImageTooLargeError: (413, "image-too-large", "Photo has too many pixels"),
    photo.ImageTooSmallError: (422, "image-too-small", "Photo too small"),
    photo.UnsupportedImageError: (422, "unsupported-image", "Photo of a kind that is not edited"),
    photo.BadOrientationError: (422, "invalid-orientation", "Photo has an invalid EXIF orientation"),
    photo.NoFaceError: (422, "no-face", "No face found in the photo"),
}
_PHOTO_DEFAULT = (422, "unusable-image", "Photo cannot be used")


def problem_response(status: int, slug: str, title: str, detail: str, instance: str | None = None,
                     headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def overloaded_response(reason: str, path: str) -> JSONResponse:
    """503 at capacity. The connection stays open: under a flood, closing it made every client
    reconnect, and the queue of connections to accept then held up everyone, /health included."""
    return problem_response(503, "overloaded", "Service at capacity", f"{reason}; retry shortly", path,
                            {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.title, exc.detail, request.url.path, exc.headers)

    def _input(table: dict[type[Exception], tuple[int, str, str]], default: tuple[int, str, str]):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            # Any AudioError (PhotoError) is the client's upload: one without its own entry is still
            # a 422, never a 500.
            status, slug, title = next((v for k, v in table.items() if isinstance(exc, k)), default)
            return problem_response(status, slug, title, str(exc), request.url.path)
        return handler

    app.add_exception_handler(audio.AudioError, _input(_AUDIO_PROBLEMS, _AUDIO_DEFAULT))
    app.add_exception_handler(photo.PhotoError, _input(_PHOTO_PROBLEMS, _PHOTO_DEFAULT))

    @app.exception_handler(UnknownEmotionError)
    async def _emotion(request: Request, exc: UnknownEmotionError) -> JSONResponse:
        return problem_response(422, "invalid-parameter", "Invalid parameter", f"emotion: {exc}", request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc']}: {e['msg']}" for e in errors)
        return problem_response(422, "invalid-parameter", "Invalid parameter", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path,
                                getattr(exc, "headers", None))

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return overloaded_response(str(exc), request.url.path)

    @app.exception_handler(DeadlineExceeded)
    async def _late(request: Request, exc: DeadlineExceeded) -> JSONResponse:
        return problem_response(503, "queue-timeout", "Request waited too long", f"{exc}; retry shortly",
                                request.url.path, {"Retry-After": "1"})

    @app.exception_handler(ShuttingDown)
    async def _stopping(request: Request, exc: ShuttingDown) -> JSONResponse:
        return problem_response(503, "shutting-down", "Service shutting down", str(exc), request.url.path,
                                {"Retry-After": "1", "Connection": "close"})

    @app.exception_handler(ClientGone)
    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: Exception) -> JSONResponse:
        log.info("client left %s %s before its answer; its work was dropped", request.method, request.url.path)
        return problem_response(CLIENT_CLOSED, "client-closed-request", "Client closed request",
                                "the client disconnected", request.url.path)

    @app.exception_handler(InvalidOutput)
    async def _invalid_output(request: Request, exc: InvalidOutput) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(500, "invalid-model-output", "Model output invalid",
                                "the model produced no valid answer for this input; it has been logged", request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal-error", "Internal server error",
                                "an unexpected error occurred; it has been logged", request.url.path)
