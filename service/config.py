"""Settings, all read from environment variables prefixed ``EMOFACE_`` (and an optional ``.env``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
STATIC_DIR = Path(__file__).resolve().parent / "static"  # the demo page


class Settings(BaseSettings):
    """Every knob of the service. ``EMOFACE_PORT=8001 python -m service`` sets ``port``."""

    # Secrets may also come as files, one per setting, named like its variable in lower case
    # (``emoface_api_key``), in the folder EMOFACE_SECRETS_DIR names: a Kubernetes Secret mounted
    # as a volume (deploy/k8s), so the key is not in the environment that child processes inherit.
    model_config = SettingsConfigDict(env_prefix="EMOFACE_", env_file=".env", extra="ignore",
                                      secrets_dir=os.environ.get("EMOFACE_SECRETS_DIR") or None)

    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 in the container)")
    port: int = Field(8000, ge=1, le=65535)
    device: str = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda, cuda:N")
    ser_weights: Path = WEIGHTS_DIR / "ser.pt"
    generator_weights: Path = WEIGHTS_DIR / "generator.pt"
    editor_weights: Path = WEIGHTS_DIR / "editor.pt"
    voice_weights: Path = WEIGHTS_DIR / "voice.pt"
    upsampler_weights: Path = WEIGHTS_DIR / "upsampler.pt"
    max_body_mb: float = Field(25.0, gt=0, description="largest accepted request body")
    max_audio_s: float = Field(60.0, gt=0, description="longest accepted recording")
    max_batch_size: int = Field(64, ge=1, le=1024, description="largest micro-batch per forward pass")
    generator_workers: int = Field(0, ge=0, description="generator batches drawn at once, each on one CPU thread "
                                                        "(0 = one per CPU core on a CPU, 1 on a GPU)")
    max_batch_wait_ms: float = Field(2.0, ge=0, description="how long a request waits for others to join its batch")
    max_queue_clips: int = Field(128, ge=1, description="recordings admitted at once (decoding, queued or "
                                                          "being heard); more get 503 with Retry-After")
    max_queue_faces: int = Field(1024, ge=1, description="face work admitted at once, in single-48px-face units "
                                                         "(a 16-face grid of 1024px costs about 115); more get 503")
    max_decodes: int = Field(0, ge=0, description="recordings decoded at once (0 = one per CPU core)")
    max_queue_photos: int = Field(16, ge=1, description="photos admitted at once (decoding, queued or being "
                                                        "edited); more get 503 with Retry-After")
    max_edits: int = Field(0, ge=0, description="photos decoded and edited at once, each up to 16.8 megapixels "
                                                "(about 150 MB at the largest; 0 = one per CPU core)")
    queue_timeout_s: float = Field(20.0, gt=0, description="a request still queued after this long gets 503 "
                                                           "instead of being run")
    body_timeout_s: float = Field(10.0, gt=0, description="longest wait for the next piece of a request body "
                                                          "(408 after it)")
    max_streams: int = Field(16, ge=0, description="live WebSocket streams at once (1013 beyond)")
    stream_max_s: float = Field(600.0, gt=0, description="longest a live stream may stay open")
    stream_idle_s: float = Field(10.0, gt=0, description="longest a live stream may send nothing")
    stream_max_per_client: int = Field(4, ge=1, description="live streams one client address may hold at once")
    stream_min_rate: float = Field(0.5, ge=0, le=1, description="least audio a live stream must send, in seconds "
                                                                "per second after its first 5 s (1008 below it)")
    decode_timeout_s: float = Field(10.0, gt=0, description="longest an FFmpeg decode (M4A, WebM, ...) may run in "
                                                            "its child process before it is killed (415)")
    max_ffmpeg_decodes: int = Field(0, ge=0, description="FFmpeg decodes (child processes) at once "
                                                         "(0 = one per two CPU cores, at least one)")
    ffmpeg_wait_s: float = Field(2.0, gt=0, description="longest an upload waits for an FFmpeg decoder (503 after)")
    decode_memory_mb: float = Field(160.0, gt=0, description="address space an FFmpeg child may add while it "
                                                             "decodes (413 beyond)")
    drain_s: float = Field(6.0, ge=0, description="on SIGTERM, how long in-flight requests may still finish; "
                                                  "after it they get 503 (keep under the orchestrator's grace)")
    linger_s: float = Field(3.0, ge=0, description="on SIGTERM, how long the server keeps listening and serving "
                                                   "new work while /ready answers 503, so that a proxy's health "
                                                   "check takes it out of rotation before it refuses anything "
                                                   "(part of drain_s, not added to it)")
    cpu_threads: int = Field(0, ge=0, description="torch intra-op threads (0 = torch default)")
    log_level: str = "INFO"
    json_logs: bool = False
    api_key: str | None = Field(None, description="when set, model routes need X-API-Key or Bearer")
    cors_origins: list[str] = Field(default_factory=list, description='JSON list, e.g. ["https://a.example"]')
    warmup: bool = True

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
