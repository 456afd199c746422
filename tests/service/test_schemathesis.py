"""Property-based fuzzing of the OpenAPI schema (schemathesis): no input the schema admits, or
any near it, may produce a server error."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.config import Settings
from service.main import create_app
from tests.service.test_browser import _free_port

pytestmark = pytest.mark.slow


def _serve_tiny_app() -> str:
    """The real app on tiny random weights, served over real HTTP for the fuzzer."""
    import tempfile
    from pathlib import Path

    import torch

    from ml import checkpoint
    from ml.labels import EMOTIONS, FER_CLASSES
    from ml.models.gan import Generator, GeneratorConfig
    from ml.models.ser import SERConfig, SERNet

    torch.manual_seed(0)
    d = Path(tempfile.mkdtemp())
    ser = checkpoint.save(d / "ser.pt", SERNet(SERConfig(channels=(4, 8, 8, 8), embed_dim=16)), labels=EMOTIONS)
    gen = checkpoint.save(d / "g.pt", Generator(GeneratorConfig(latent_dim=16, base_channels=4)), labels=FER_CLASSES)
    port = _free_port()
    app = create_app(Settings(ser_weights=ser, generator_weights=gen, port=port, _env_file=None, log_level="WARNING"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/ready").status_code == 200:
                return base
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("fuzzing server never became ready")


BASE = _serve_tiny_app()
schema = schemathesis.openapi.from_url(BASE + "/openapi.json")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
