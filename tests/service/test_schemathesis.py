"""Property-based fuzzing of the OpenAPI schema (schemathesis): no input the schema admits, or
any near it, may produce a server error."""

from __future__ import annotations

import pytest
import schemathesis
import schemathesis.pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.conftest import fixture_clips, live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(tiny_weights):
    """The schema of the real app, served by uvicorn on the tiny checkpoints for this module only."""
    with live_server(*tiny_weights, log_level="WARNING") as (_, base):
        yield schemathesis.openapi.from_url(base + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def _raw_audio_bodies():
    """Raw request bodies: a real clip, cut-off and corrupted copies of it, and arbitrary bytes."""
    real = fixture_clips()["angry"].read_bytes()
    return st.one_of(
        st.just(real),
        st.integers(0, len(real)).map(lambda n: real[:n]),
        st.tuples(st.integers(0, len(real) - 1), st.binary(min_size=1, max_size=64)).map(
            lambda t: real[:t[0]] + t[1] + real[t[0] + len(t[1]):]),
        st.binary(max_size=4096),
    )


# Without a strategy schemathesis skips the raw-body variants of the audio routes.
for _media_type in ("audio/wav", "audio/flac"):
    schemathesis.openapi.media_type(_media_type, _raw_audio_bodies())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
