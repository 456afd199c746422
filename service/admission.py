"""Admission control and request lifetimes: what a request may cost, and when its work stops.

Plain asyncio, no FastAPI. Three rules:

- **Budgets.** Each model admits work up to a cost (:class:`Budget`); a request beyond it is
  refused at once with :class:`~service.inference.Overloaded` (503 with ``Retry-After``), before
  it reads its body or costs anything.
- **Clients that leave.** Once a request's body is read, :class:`Guard` watches its connection;
  when the client disconnects, the work it is waiting for is cancelled (a queued item is dropped
  before it runs) and the request ends as :class:`ClientGone`.
- **Drain.** On SIGTERM (:class:`Drain`) the replica leaves rotation (``/ready`` 503); new work
  is still admitted for the linger, while a proxy may still send it, then refused (503), and
  in-flight requests may finish for ``drain_s``; whatever is still waiting then ends as
  :class:`ShuttingDown` (503), so every client gets an answer before the server's own grace
  period runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from service.inference import Overloaded

log = logging.getLogger(__name__)
T = TypeVar("T")


def _settle(future: asyncio.Future) -> None:
    """Retrieve an abandoned future's outcome, so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


class ClientGone(Exception):
    """The client disconnected before its answer was ready: its work was dropped."""


class ShuttingDown(Exception):
    """The service is stopping and this request could not finish within the drain period."""


class Drain:
    """Set once, on SIGTERM: ``draining`` at once, ``refusing`` (new work) after the linger,
    ``expired`` after the drain period."""

    def __init__(self) -> None:
        self.draining = False
        self.refusing = False
        self._begun = False  # set by begin() itself, before the loop runs _begin
        self._loop: asyncio.AbstractEventLoop | None = None
        self.expired: asyncio.Future[None] | None = None  # created on the serving loop by bind()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.expired = loop.create_future()  # one future every request's Guard waits on

    def begin(self, grace_s: float, linger_s: float = 0.0) -> bool:
        """Start draining; safe to call from a signal handler or another thread. New work is
        admitted for ``linger_s`` more (at most ``grace_s``); a later call without a linger (a
        second signal) refuses it at once. Returns whether a linger began: then ``refusing``
        turns true when it ends."""
        if self._loop is None:  # not serving yet: nothing to drain
            return False
        linger_s = min(linger_s, grace_s)
        if self._begun:
            if linger_s <= 0:
                self._loop.call_soon_threadsafe(self._refuse)
            return False
        self._begun = True
        self._loop.call_soon_threadsafe(self._begin, grace_s, linger_s)
        return linger_s > 0

    def _begin(self, grace_s: float, linger_s: float) -> None:
        self.draining = True
        log.info("draining: new work admitted for %.1f s, in-flight requests have %.1f s to finish", linger_s, grace_s)
        assert self._loop is not None
        if linger_s > 0:
            self._loop.call_later(linger_s, self._refuse)
        else:
            self._refuse()
        self._loop.call_later(grace_s, self._expire)

    def _refuse(self) -> None:
        self.refusing = True

    def _expire(self) -> None:
        if self.expired is not None and not self.expired.done():
            self.expired.set_result(None)


class Budget:
    """At most ``capacity`` cost units of one model's work admitted at once (decoding,
    queued, running or encoding). A request that would exceed it is refused at once."""

    def __init__(self, name: str, capacity: float) -> None:
        self.name, self.capacity, self.used = name, capacity, 0.0

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    @contextmanager
    def admit(self, cost: float, drain: Drain | None = None) -> Iterator[None]:
        if drain is not None and drain.refusing:
            raise ShuttingDown("the service is shutting down")
        if self.used > 0 and self.used + cost > self.capacity:  # one request alone is always admitted
            raise Overloaded(f"the {self.name} model is at capacity ({self.capacity:g} units of work in flight)")
        self.used += cost
        try:
            yield
        finally:
            self.used -= cost


class Guard:
    """Runs one request's awaits so that they end when its client leaves or the drain expires."""

    def __init__(self, receive: Callable[[], Awaitable[dict]], drain: Drain) -> None:
        self._receive, self._drain = receive, drain
        self._gone: asyncio.Task[None] | None = None

    def watch_disconnect(self) -> None:
        """Start watching the connection; call once the body has been read (the watcher reads
        the connection's remaining messages, and after the body that is only the disconnect)."""
        if self._gone is None:
            self._gone = asyncio.ensure_future(self._wait_disconnect())

    async def _wait_disconnect(self) -> None:
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass
        except Exception:  # the connection is unusable: as good as gone
            return

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        waiters: set[asyncio.Future] = {task}
        waiters |= {f for f in (self._drain.expired, self._gone) if f is not None}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()  # a queued item whose future is cancelled is dropped before it runs
        task.add_done_callback(_settle)
        if self._gone is not None and self._gone.done():
            raise ClientGone("the client disconnected")
        raise ShuttingDown("the service is shutting down and this request could not finish in time")

    def close(self) -> None:
        if self._gone is not None:
            self._gone.cancel()


#: A new live stream's first seconds, before its audio rate counts (a microphone starting up).
GRACE_S = 5.0


class NoSlot(Exception):
    """Every live-stream slot (or every one this client may hold) is taken by a stream that sends."""


@dataclass(eq=False)
class Slot:
    """One open stream's place: who holds it, since when, how much audio it has sent."""

    client: str
    opened: float
    audio_s: float = 0.0
    evicted: asyncio.Event = field(default_factory=asyncio.Event)

    def starving(self, now: float, min_rate: float) -> bool:
        """Sent less than ``min_rate`` seconds of audio per second since :data:`GRACE_S` after opening."""
        return now - self.opened > GRACE_S and self.audio_s < min_rate * (now - self.opened - GRACE_S)


class StreamTable:
    """The live streams' slots: at most ``capacity``, ``per_client`` per client address. A stream
    that asks when they are full takes the slot of one that is starving (:meth:`Slot.starving`)."""

    def __init__(self, capacity: int, per_client: int, min_rate: float) -> None:
        self.capacity, self.per_client, self.min_rate = capacity, per_client, min_rate
        self.slots: list[Slot] = []

    def open(self, client: str) -> Slot:
        now = time.monotonic()
        mine = [s for s in self.slots if s.client == client]
        if len(mine) >= self.per_client and not self._evict(mine, now):
            raise NoSlot(f"this client holds {self.per_client} live streams already; retry shortly")
        if len(self.slots) >= self.capacity and not self._evict(self.slots, now):
            raise NoSlot(f"the service holds {self.capacity} live streams; retry shortly")
        slot = Slot(client, now)
        self.slots.append(slot)
        return slot

    def _evict(self, among: list[Slot], now: float) -> bool:
        starving = [s for s in among if s.starving(now, self.min_rate)]
        if not starving:
            return False
        victim = min(starving, key=lambda s: s.audio_s - self.min_rate * (now - s.opened))
        self.close(victim)
        victim.evicted.set()
        return True

    def close(self, slot: Slot) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
