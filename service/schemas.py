"""Response bodies (they also document the API in /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ml.labels import EMOTIONS

_EXAMPLE_PROBS = {e: round(p, 4) for e, p in zip(EMOTIONS, (0.02, 0.01, 0.81, 0.03, 0.05, 0.04, 0.02, 0.02))}


class EmotionResult(BaseModel):
    emotion: str = Field(..., description="the most probable of the 8 emotions", examples=["happy"])
    confidence: float = Field(..., ge=0, le=1, description="its probability", examples=[0.81])
    probabilities: dict[str, float] = Field(..., description="all 8 emotions -> probability (sum 1)",
                                            examples=[_EXAMPLE_PROBS])
    duration_s: float = Field(..., description="duration of the recording", examples=[3.7])
    sample_rate: int = Field(..., description="sample rate of the recording as sent", examples=[48000])
    channels: int = Field(..., description="channels of the recording as sent", examples=[2])


class SpeechToFaceResult(EmotionResult):
    seed: int | None = Field(..., description="seed of the face when one was given; else null", examples=[None])
    face: Literal["voice", "seed", "photo"] = Field(
        ..., description="whose face: the speaker's own (drawn from the voice, when no seed is given), the "
                         "given seed's, or the uploaded photo's", examples=["voice"])
    image_png_base64: str = Field(..., description="the face as a base64 PNG")


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])


class ModelCard(BaseModel):
    name: str
    path: str
    sha256: str
    arch: str
    device: str = Field(..., examples=["cpu"], description="where this model runs (the SER always on the CPU)")
    parameters: int
    load_seconds: float
    metrics: dict
    data: dict


class Ready(BaseModel):
    status: str = Field(..., examples=["ready"])
    device: str = Field(..., examples=["cpu"])
    models: list[ModelCard]
