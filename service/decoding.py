"""Decoding an upload: libsndfile on a worker thread; what libsndfile does not recognise, PyAV
(FFmpeg) in a confined child process, from a pool of its own.

FFmpeg parses containers and codecs of every kind, a large surface for a crafted file. So:

- **Only the listed containers.** The child opens the upload with the demuxers of
  :data:`ml.decoding.FFMPEG_FORMATS` only, and no nested file, URL or socket; what FFmpeg says of
  a bad file is logged, and the client gets a plain 415.
- **Confined.** The child runs under resource limits (:func:`confine`): address space (the
  memory it may add, ``EMOFACE_DECODE_MEMORY_MB``), CPU time, no file it can write, no new file
  descriptor (so no file or socket it can open), no core dump, and a lower CPU priority than the
  service. A crash (a signal), a limit, or a hang past ``EMOFACE_DECODE_TIMEOUT_S`` fails that
  request alone.
- **A slot per child, until it is reaped.** At most ``EMOFACE_MAX_FFMPEG_DECODES`` children run
  at once; an upload waits at most ``EMOFACE_FFMPEG_WAIT_S`` for a slot, then gets 503. A request
  that is cancelled (its client left, or the drain expired) kills its child, and the slot is
  freed only once the child is gone. WAV and FLAC never wait behind FFmpeg: libsndfile decodes
  take ``EMOFACE_MAX_DECODES`` slots of their own.

The children fork from a forkserver that has imported :mod:`ml.decoding` and PyAV, never torch,
so a decode starts in milliseconds and a child holds tens of megabytes. The forkserver starts
with the first such upload, not with the service.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

import anyio

from ml import decoding
from service.inference import Overloaded

log = logging.getLogger(__name__)
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["ml.decoding", "av", "service.decoding"])


class DecoderFailedError(decoding.AudioDecodeError):
    """FFmpeg crashed, hit a limit, or ran out of time on this file."""


class DecoderBusy(Overloaded):
    """Every FFmpeg slot stayed taken for the whole wait: 503 with Retry-After, as at capacity."""


#: What the child runs on the bytes (a module-level function: the child imports it by name).
DECODER: Callable[..., decoding.DecodedAudio] = decoding.decode_container


def confine(memory_bytes: int, cpu_s: int) -> None:
    """Resource limits for this (child) process, from here on: at most ``memory_bytes`` more address
    space than it has now, ``cpu_s`` seconds of CPU time (then SIGXCPU), no byte written to a file,
    no core dump, no new file descriptor, and a lower CPU priority. Linux; elsewhere the limits the
    platform lacks are left out."""
    import resource

    try:
        with open("/proc/self/statm") as fh:
            vm_now = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm_now + memory_bytes, vm_now + memory_bytes))
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No new descriptor: fill every free number below the highest open one, then cap the count
    # there, so open() and socket() fail with EMFILE whatever they ask for.
    fds = [int(name) for name in os.listdir("/proc/self/fd")] if os.path.isdir("/proc/self/fd") else []
    if fds:
        top = max(fds) + 1
        while (fd := os.dup(0)) < top:
            pass
        os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, top))
    os.nice(10)


def _child(target: Callable[..., decoding.DecodedAudio], data: bytes, max_duration_s: float, memory_bytes: int,
           cpu_s: int, conn) -> None:
    """The child's whole life: confine itself, decode, send ``(ok, value, log_detail)``."""
    decoding.load_ffmpeg()  # before confine(): no module can be read from disk after it
    confine(memory_bytes, cpu_s)
    detail = ""
    try:
        result: object = target(data, max_duration_s=max_duration_s)
        ok = True
    except decoding.AudioError as exc:
        ok, result = False, exc
        detail = repr(exc.__cause__) if exc.__cause__ is not None else ""
    except MemoryError:
        ok, result = False, decoding.AudioTooLargeError("decoding this file needs more memory than a decode is allowed")
    except Exception as exc:  # PyAV failing in a way decode_container does not name: still this file's fault
        ok, result, detail = False, decoding.AudioDecodeError(decoding.FFMPEG_REFUSED), repr(exc)
    conn.send((ok, result, detail))
    conn.close()


class Child:
    """One FFmpeg decode in a confined child process, awaited without a thread: its pipe and its
    process sentinel are watched by the event loop."""

    def __init__(self, data: bytes, *, max_duration_s: float, timeout_s: float, memory_bytes: int,
                 target: Callable[..., decoding.DecodedAudio]) -> None:
        self.timeout_s = timeout_s
        self.receive, send = _CONTEXT.Pipe(duplex=False)
        cpu_s = max(1, math.ceil(timeout_s))
        self.process = _CONTEXT.Process(target=_child, args=(target, data, max_duration_s, memory_bytes, cpu_s, send),
                                        daemon=True)
        try:
            self.process.start()
        finally:
            send.close()

    async def result(self) -> decoding.DecodedAudio:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.receive.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)  # the child wrote its answer, or died (EOF)
        try:  # asyncio.wait, not wait_for: Python 3.11's wait_for can swallow a cancellation
            await asyncio.wait({ready}, timeout=self.timeout_s)
        finally:
            loop.remove_reader(fd)
        if not ready.done():
            log.warning("decoder child %s still running after %.1f s: killed", self.process.pid, self.timeout_s)
            raise DecoderFailedError(f"not decodable audio: decoding took over {self.timeout_s:g} s")
        try:  # the answer is at most a minute of 16 kHz samples: read on a thread, off the loop
            ok, value, detail = await anyio.to_thread.run_sync(self.receive.recv)
        except EOFError:  # the child died before it answered: a crash, or a limit it hit
            code = await anyio.to_thread.run_sync(self.kill)  # reaps it: it is dead already
            log.warning("decoder child %s died (exit code %s)", self.process.pid, code)
            raise DecoderFailedError("not decodable audio: the decoder crashed on it or exceeded its limits") from None
        if detail:
            log.info("FFmpeg refused an upload: %s", detail)
        if ok:
            return value
        raise value

    def kill(self) -> int | None:
        """Kill the child if it still runs and reap it: its slot may be given to another only after.
        Returns its exit code. The pipe closes with this object (a thread may still be reading it)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        return self.process.exitcode


class Decoder:
    """Every upload's decoding: libsndfile slots and FFmpeg slots, bounded apart."""

    def __init__(self, *, max_decodes: int, max_ffmpeg: int, ffmpeg_wait_s: float, timeout_s: float,
                 memory_bytes: int) -> None:
        self.slots = asyncio.Semaphore(max_decodes)
        self.ffmpeg_slots = asyncio.Semaphore(max_ffmpeg)
        self.max_ffmpeg, self.ffmpeg_wait_s = max_ffmpeg, ffmpeg_wait_s
        self.timeout_s, self.memory_bytes = timeout_s, memory_bytes
        self.children: set[Child] = set()  # FFmpeg children alive now (never more than max_ffmpeg)

    async def decode(self, file: BinaryIO, *, max_duration_s: float) -> decoding.DecodedAudio:
        """The decoded recording."""
        async with self.slots:
            decoded = await anyio.to_thread.run_sync(_decode_sndfile, file, max_duration_s)
        if isinstance(decoded, bytes):  # libsndfile does not know the container: FFmpeg's turn
            decoded = await self.decode_ffmpeg(decoded, max_duration_s=max_duration_s)
        return decoded

    async def decode_ffmpeg(self, data: bytes, *, max_duration_s: float) -> decoding.DecodedAudio:
        await _acquire(self.ffmpeg_slots, self.ffmpeg_wait_s,
                       f"all {self.max_ffmpeg} FFmpeg decoders stayed busy for {self.ffmpeg_wait_s:g} s")
        loop = asyncio.get_running_loop()
        lock, started, gone = threading.Lock(), [], [False]

        def start() -> None:  # on a thread: the first start also starts the forkserver (about a second)
            child = Child(data, max_duration_s=max_duration_s, timeout_s=self.timeout_s,
                          memory_bytes=self.memory_bytes, target=DECODER)
            with lock:
                if not gone[0]:
                    started.append(child)
                    self.children.add(child)
                    return
            child.kill()  # its request ended while it started: it never gets to decode

        starting = loop.run_in_executor(None, start)
        try:
            await asyncio.shield(starting)
            return await started[0].result()
        finally:  # answered, failed, timed out or cancelled: the child is gone before its slot is free
            with lock:
                gone[0] = True
                victims = list(started)
            for child in victims:
                child.kill()
                self.children.discard(child)
            if starting.done():
                self.ffmpeg_slots.release()
            else:  # cancelled while its child was starting: the slot waits for the start, which kills it
                starting.add_done_callback(lambda f: (f.cancelled() or f.exception(), self.ffmpeg_slots.release()))


async def _acquire(slots: asyncio.Semaphore, wait_s: float, busy: str) -> None:
    """Take a slot within ``wait_s`` (else :class:`DecoderBusy`). Not ``asyncio.wait_for``: on Python
    3.11 a cancellation that meets the acquisition is lost, and a request whose client left would
    go on to start a decoder."""
    acquire = asyncio.ensure_future(slots.acquire())
    try:
        await asyncio.wait({acquire}, timeout=wait_s)
    except asyncio.CancelledError:
        if not acquire.cancel() and not acquire.cancelled() and acquire.exception() is None:
            slots.release()  # it was acquired as the cancellation came: give it back
        raise
    if not acquire.done():
        acquire.cancel()
        raise DecoderBusy(busy)


def _decode_sndfile(file: BinaryIO, max_duration_s: float) -> decoding.DecodedAudio | bytes:
    """(worker thread) The recording decoded by libsndfile, or its bytes when libsndfile does not
    recognise the container."""
    file.seek(0)
    try:
        return decoding.decode(file, max_duration_s=max_duration_s)
    except decoding.UnknownFormatError:
        file.seek(0)
        return file.read()
