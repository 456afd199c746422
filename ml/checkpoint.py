"""The only code that writes or reads weight files.

A checkpoint is a dict of plain types and tensors, loaded with ``weights_only=True``::

    format_version  int
    arch            registry name below ("ser-whisper", "cgan-generator", ...)
    config          the model's config dataclass as a dict (the network is rebuilt from it)
    labels          the class names, in output order
    feature_params  the audio front-end constants (speech models only), checked on load
    data            provenance: dataset name, split, fingerprint
    metrics         what was measured on it (dict)
    drawing         generators only: how faces are drawn from it (``ml.generate.Drawing`` as a dict)
    state_dict      weights of the unwrapped module
    training_state  optional: optimizer/EMA/step state for resuming (absent in shipped files)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml import audio
from ml.models.editor import Editor, EditorConfig
from ml.models.baseline_gan import (BaselineDiscriminator, BaselineDiscriminatorConfig, BaselineGenerator,
                                    BaselineGeneratorConfig)
from ml.models.fer_classifier import FERClassifier, FERClassifierConfig
from ml.models.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from ml.models.ser import SERHead, SERHeadConfig
from ml.models.upsampler import FaceUpsampler, UpsamplerConfig
from ml.models.voice import VoiceEncoder, VoiceEncoderConfig

#: 2 (2026-12-02): a generator's drawing settings left its config for their own ``drawing`` key,
#: and the shipped files were converted once; a file of format 1 is refused.
FORMAT_VERSION = 2

ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "ser-whisper": (SERHead, SERHeadConfig),
    "cgan-generator": (Generator, GeneratorConfig),
    "cgan-discriminator": (Discriminator, DiscriminatorConfig),
    "fer-classifier": (FERClassifier, FERClassifierConfig),
    "expression-editor": (Editor, EditorConfig),
    "baseline-generator": (BaselineGenerator, BaselineGeneratorConfig),
    "baseline-discriminator": (BaselineDiscriminator, BaselineDiscriminatorConfig),
    "voice-encoder": (VoiceEncoder, VoiceEncoderConfig),
    "face-upsampler": (FaceUpsampler, UpsamplerConfig),
}
GENERATORS = ("cgan-generator", "baseline-generator")  # what FaceGenerator can draw with
SER_MODELS = ("ser-whisper",)  # what EmotionRecognizer can hear with; they carry feature_params
#: The audio front-end contract each speech architecture was trained with, stored in its files and checked on load.
FEATURE_CONTRACTS = {"ser-whisper": audio.WHISPER_FEATURE_PARAMS, "voice-encoder": audio.VOICE_FEATURE_PARAMS}


class CheckpointError(RuntimeError):
    """A weight file that is missing, unreadable, or not what was expected."""


class FeatureMismatchError(CheckpointError):
    """The checkpoint's audio feature parameters differ from the code's."""


@dataclass
class Loaded:
    model: nn.Module
    meta: dict[str, Any]  # everything in the file except the weights
    sha256: str


def arch_of(model: nn.Module) -> str:
    for name, (cls, _) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered architecture")


def save(
    path: str | Path,
    model: nn.Module,
    *,
    labels: list[str] | tuple[str, ...],
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    drawing: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (unwrapped, on any device) atomically to ``path``. A generator's file gets a
    ``drawing`` key, ``{"latent_scale": None}`` (as trained) unless ``drawing`` says otherwise."""
    path = Path(path)
    arch = arch_of(model)
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": _plain(dataclasses.asdict(model.config)),
        "labels": list(labels),
        "data": data or {},
        "metrics": metrics or {},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if arch in FEATURE_CONTRACTS:
        payload["feature_params"] = dict(FEATURE_CONTRACTS[arch])
    if arch in GENERATORS:
        payload["drawing"] = _plain(drawing or {"latent_scale": None})
    if training_state is not None:
        payload["training_state"] = training_state
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary file in the same folder: two writers never share one, and a crash
    # mid-write never leaves a half-written file under the real name.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a weight file is read by the service's own user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format (not yet built into a model)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt zip/pickle
        raise CheckpointError(f"weight file {path} is corrupt or not a checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, expected {FORMAT_VERSION}")
    if payload.get("arch") not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {payload.get('arch')!r}")
    return payload


def load(path: str | Path, *, arch: str | tuple[str, ...] | None = None, labels: tuple[str, ...] | None = None,
         device: str | torch.device = "cpu") -> Loaded:
    """Rebuild the network stored in ``path`` and load its weights, in eval mode on ``device``.

    ``arch`` (a name or a tuple of accepted names) and ``labels``, when given, must match the file. Raises :class:`CheckpointError`
    (or :class:`FeatureMismatchError`) saying what is wrong.
    """
    payload = read(path)
    accepted = (arch,) if isinstance(arch, str) else arch
    if accepted is not None and payload["arch"] not in accepted:
        raise CheckpointError(f"{path}: holds a {payload['arch']!r} model, expected {' or '.join(map(repr, accepted))}")
    if labels is not None and tuple(payload.get("labels", ())) != tuple(labels):
        raise CheckpointError(f"{path}: labels {payload.get('labels')} are not {list(labels)}")
    if payload["arch"] in FEATURE_CONTRACTS:
        check_feature_params(payload.get("feature_params", {}), source=str(path), expected=FEATURE_CONTRACTS[payload["arch"]])
    cls, config_cls = ARCHITECTURES[payload["arch"]]
    try:
        model = cls(config_cls(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the {payload['arch']} network: {exc}") from exc
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "training_state")}
    return Loaded(model=model, meta=meta, sha256=file_sha256(path))


def check_feature_params(stored: dict[str, Any], *, source: str, expected: dict[str, Any]) -> None:
    """Raise :class:`FeatureMismatchError` listing every feature parameter that differs."""
    diffs = [
        f"{key}: checkpoint {stored.get(key)!r} != code {expected.get(key)!r}"
        for key in sorted(set(stored) | set(expected))
        if stored.get(key) != expected.get(key)
    ]
    if diffs:
        raise FeatureMismatchError(f"{source}: audio feature parameters differ: " + "; ".join(diffs))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the dict holds only types weights_only accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
