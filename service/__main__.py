"""``python -m service`` (or the ``emoface`` console script): run the API with uvicorn."""

from __future__ import annotations

import uvicorn

from service.config import Settings
from service.main import create_app


def main() -> None:
    settings = Settings()
    # A missing or corrupt weight file raises during the lifespan: uvicorn logs the message and
    # exits non-zero. timeout_graceful_shutdown lets in-flight requests finish on SIGTERM.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=8, lifespan="on")


if __name__ == "__main__":
    main()
