"""The HTTP server around the app: uvicorn, with a bound on request heads and a drain on SIGTERM."""

from __future__ import annotations

import logging
import math
import signal

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings
from service.live import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: uvicorn's own grace on SIGTERM is what remains of the app's drain (``EMOFACE_DRAIN_S``) after
#: the linger (:func:`linger_s`), plus this: past it, uvicorn cancels what still runs and answers
#: a plain-text 500, so the drain, which answers every request with problem+json, must end first.
GRACE_MARGIN_S = 2
#: The most bytes of a request line plus headers. httptools itself has no bound: a 200 MB header
#: would be buffered, and parsed on the event loop, whole.
MAX_HEAD_BYTES = 64 * 1024
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/problem+json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_BODY = (b'{"type":"https://emoface.dev/problems/headers-too-large","title":"Request header fields too large",'
         b'"status":431,"detail":"the request line and headers exceed %d bytes"}' % MAX_HEAD_BYTES)


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools, answering 431 and closing once a request's head passes :data:`MAX_HEAD_BYTES`."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._head_bytes, self._in_head = 0, True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            log.info("request head over %d bytes from %s: 431", MAX_HEAD_BYTES, self.client)
            self.transport.write(_TOO_LARGE % (len(_BODY), _BODY))
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes, self._in_head = 0, True  # the next request on this connection


def linger_s(settings: Settings) -> float:
    """How long after SIGTERM the server still listens and admits new work: ``linger_s``, within
    the drain."""
    return min(settings.linger_s, settings.drain_s)


class Server(uvicorn.Server):
    """uvicorn, telling the app when SIGTERM (or SIGINT) arrives so that it can drain
    (:class:`~service.admission.Drain`): leave rotation, refuse new work, let in-flight requests
    finish for ``drain_s``, then answer what is left with 503.

    On SIGTERM the replica lingers first (:func:`linger_s`), as a Kubernetes preStop pause would:
    ``/ready`` answers 503 at once, so a proxy's health check takes it out of rotation (HAProxy:
    within 2 s), while the socket stays open and what the proxy still sends is served as usual.
    Only then is new work refused and does uvicorn begin to stop. Closing at once raced the proxy:
    an idle keep-alive connection it was reusing was cut, and so was an upload refused with an
    early 503 while its body still arrived; an upload too large for the proxy to resend reached
    its client as a dropped connection. SIGINT (Ctrl-C) and a second signal stop at once, as
    uvicorn does."""

    _lingering: int | None = None  # the signal that began the linger, until uvicorn is told to stop

    def handle_exit(self, sig, frame) -> None:
        app = self.config.app
        first_sigterm = sig == signal.SIGTERM and self._lingering is None and not self.should_exit
        linger = linger_s(app.state.settings) if first_sigterm else 0.0
        if app.state.drain.begin(app.state.settings.drain_s, linger):
            self._lingering = sig
            log.info("SIGTERM: still serving for %.1f s, so that a proxy takes this replica out of rotation", linger)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        # the linger ends when the drain starts refusing new work: one clock, the drain's
        if self._lingering is not None and not self.should_exit and self.config.app.state.drain.refusing:
            super().handle_exit(self._lingering, None)
        return await super().on_tick(counter)


def make_server(app: FastAPI, settings: Settings, **overrides) -> Server:
    """uvicorn on asyncio's own event loop, not uvloop. Under a 2000-connection flood uvloop
    accepted no new connection until the flood ended (a /health probe waited 9.7 s), while
    asyncio's loop served it in under a second; /generate's throughput was the same on both."""
    options = {"host": settings.host, "port": settings.port, "log_level": settings.log_level.lower(),
               "access_log": False, "lifespan": "on",
               "timeout_graceful_shutdown": math.ceil(settings.drain_s - linger_s(settings)) + GRACE_MARGIN_S,
               "http": BoundedHeadProtocol, "loop": "asyncio",
               "ws_max_size": MAX_MESSAGE_BYTES,  # a larger live-stream message is closed with 1009 before it is buffered
               **overrides}
    return Server(uvicorn.Config(app, **options))
