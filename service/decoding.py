"""Decoding an upload: libsndfile in the calling (worker) thread; what libsndfile does not
recognise, PyAV (FFmpeg) in a child process of its own, under a time limit.

FFmpeg parses containers and codecs of every kind, which is a large surface for a crafted
file: in a child, a crash (a signal) or a hang (past ``EMOFACE_DECODE_TIMEOUT_S``, then killed)
fails that request alone with a 415, and the service goes on. The children fork from a
forkserver that has imported the decoder once, so a decode starts in milliseconds, never from
the service's own threads. The forkserver starts with the first such upload, not with the
service: it holds about 240 MB (``ml.audio`` imports torch), which a service that never sees an
M4A or a WebM should not pay. The same limits as libsndfile's hold inside the child
(``ml.audio.decode_container``), and the semaphore ``EMOFACE_MAX_DECODES`` bounds them all.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from typing import BinaryIO

from ml import audio

log = logging.getLogger(__name__)
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["ml.audio", "av"])


class DecoderFailedError(audio.AudioDecodeError):
    """FFmpeg crashed or ran out of time on this file."""


#: What the child runs on the bytes (a module-level function: the child imports it by name).
DECODER = audio.decode_container


def decode(file: BinaryIO, *, max_duration_s: float, timeout_s: float) -> audio.DecodedAudio:
    """The recording in ``file`` as model input, by libsndfile or else by FFmpeg in a child."""
    try:
        return audio.decode(file, max_duration_s=max_duration_s)
    except audio.UnknownFormatError:
        file.seek(0)
        return decode_isolated(file.read(), max_duration_s=max_duration_s, timeout_s=timeout_s, target=DECODER)


def decode_isolated(data: bytes, *, max_duration_s: float, timeout_s: float,
                    target: Callable[..., audio.DecodedAudio] = audio.decode_container) -> audio.DecodedAudio:
    """``target(data, max_duration_s=...)`` in a child process: its result, or the AudioError it
    raised; :class:`DecoderFailedError` when it dies or takes longer than ``timeout_s``."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_run, args=(target, data, max_duration_s, send), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            log.warning("decoder child %s still running after %.1f s: killed", child.pid, timeout_s)
            raise DecoderFailedError(f"not decodable audio: decoding took over {timeout_s:g} s")
        try:
            ok, value = receive.recv()
        except EOFError:  # the child died before it answered
            child.join(5)
            log.warning("decoder child %s died (exit code %s)", child.pid, child.exitcode)
            raise DecoderFailedError(f"not decodable audio: the decoder crashed on it (exit code {child.exitcode})") from None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if ok:
        return value
    raise value


def _run(target: Callable[..., audio.DecodedAudio], data: bytes, max_duration_s: float, conn) -> None:
    try:
        result = (True, target(data, max_duration_s=max_duration_s))
    except audio.AudioError as exc:
        result = (False, exc)
    except Exception as exc:  # PyAV failing in a way decode_container does not name: still this file's fault
        result = (False, audio.AudioDecodeError(f"not decodable audio: {type(exc).__name__}: {exc}"))
    conn.send(result)
    conn.close()

