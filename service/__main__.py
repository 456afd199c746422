"""``python -m service`` (or the ``emoface`` console script): run the API with uvicorn."""

from __future__ import annotations

from service.config import Settings
from service.main import create_app
from service.server import make_server


def main() -> None:
    # A missing or corrupt weight file raises during the lifespan: uvicorn logs the message and
    # exits non-zero.
    settings = Settings()
    make_server(create_app(settings), settings).run()


if __name__ == "__main__":
    main()
