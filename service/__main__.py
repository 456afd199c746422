"""``python -m service`` (or the ``emoface`` console script): run the API with uvicorn."""

from __future__ import annotations

import importlib.util
import sys

from service.config import Settings
from service.main import create_app
from service.server import make_server


def as_package_main() -> None:
    """Name this package's ``__main__`` as the main module, however the process was started. Each
    FFmpeg child (``service/decoding.py``) re-imports its parent's main *script* (multiprocessing
    prepares a child so), but never a package's ``__main__``: the ``emoface`` console script is a
    file, and re-importing it would load torch into every child."""
    main_module = sys.modules["__main__"]
    if getattr(main_module, "__spec__", None) is None:
        main_module.__spec__ = importlib.util.find_spec("service.__main__")


def main() -> None:
    as_package_main()
    # A missing or corrupt weight file raises during the lifespan: uvicorn logs the message and
    # exits non-zero.
    settings = Settings()
    make_server(create_app(settings), settings).run()


if __name__ == "__main__":
    main()
