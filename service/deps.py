"""Dependencies the routes declare: the loaded models (503 until ready) and the API key."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.engines import Engines
from service.errors import NotReady, Problem


def engines_of(request: Request) -> Engines:
    engines: Engines | None = request.app.state.engines
    if engines is None or not engines.ready.is_set():
        raise NotReady()
    return engines


def check_api_key(request: Request, x_api_key: Annotated[str | None, Header()] = None,
                  authorization: Annotated[str | None, Header()] = None) -> None:
    expected = request.app.state.settings.api_key
    if not expected:
        return
    given = x_api_key or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else None)
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise Problem(401, "unauthorized", "Unauthorized", "a valid API key is required (X-API-Key or Bearer)",
                      headers={"WWW-Authenticate": "Bearer"})


Models = Annotated[Engines, Depends(engines_of)]
Auth = [Depends(check_api_key)]
