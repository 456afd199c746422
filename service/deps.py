"""Dependencies the routes declare: the loaded models (503 until ready) and the API key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request

from service.admission import Guard
from service.engines import Engines
from service.errors import NotReady, Problem


# Every dependency here is async: FastAPI runs a plain ``def`` dependency on a worker thread,
# a thread hop per request for a few attribute reads.


async def engines_of(request: Request) -> Engines:
    engines: Engines | None = request.app.state.engines
    if engines is None or not engines.ready.is_set():
        raise NotReady()
    return engines


def key_matches(expected: str | None, given: str | None) -> bool:
    """True when no key is set, or ``given`` is it (compared in constant time)."""
    if not expected:
        return True
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


async def check_api_key(request: Request, x_api_key: Annotated[str | None, Header()] = None,
                        authorization: Annotated[str | None, Header()] = None) -> None:
    given = x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None)
    if not key_matches(request.app.state.settings.api_key, given):
        raise Problem(401, "unauthorized", "Unauthorized", "a valid API key is required (X-API-Key or Bearer)",
                      headers={"WWW-Authenticate": "Bearer"})


async def guard_of(request: Request) -> AsyncIterator[Guard]:
    """The request's :class:`Guard`: its awaits end when its client leaves or the drain expires."""
    guard = Guard(request.receive, request.app.state.drain)
    try:
        yield guard
    finally:
        guard.close()


Models = Annotated[Engines, Depends(engines_of)]
Guarded = Annotated[Guard, Depends(guard_of)]
Auth = [Depends(check_api_key)]
