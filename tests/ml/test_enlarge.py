"""The enlargement of drawn faces (ml/enlarge.py) and the shipped upsampler (weights/upsampler.pt)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ml import checkpoint
from ml.enlarge import Enlarger, lanczos
from ml.evaluate_upsampler import psnr
from ml.generate import FaceGenerator
from ml.models.gan import from_uint8, to_uint8
from ml.models.upsampler import FaceUpsampler
from ml.train_upsampler import reduce
from tests.conftest import SHIPPED_GENERATOR, SHIPPED_UPSAMPLER


@pytest.fixture(scope="module")
def shipped():
    return Enlarger.from_checkpoint(SHIPPED_UPSAMPLER)[0]


@pytest.fixture(scope="module")
def faces():
    generator = FaceGenerator.from_checkpoint(SHIPPED_GENERATOR)[0]
    return generator.render([c % 7 for c in range(35)], list(range(35)))


def test_an_untrained_upsampler_is_bicubic(faces):
    """Its last convolution starts at zero, so before training it adds nothing to the bicubic base."""
    got = Enlarger(FaceUpsampler()).learned(faces[:4])
    want = to_uint8(F.interpolate(from_uint8(faces[:4]), scale_factor=2, mode="bicubic", align_corners=False)).numpy()
    assert got.shape == (4, 96, 96) and np.array_equal(got, want)


def test_the_rule_by_size(shipped, faces):
    """48 px: as drawn; above: the network to 96 px, then Lanczos; below 48: refused."""
    assert shipped.enlarge(faces, 48) is faces
    assert np.array_equal(shipped.enlarge(faces[:3], 96), shipped.learned(faces[:3]))
    assert np.array_equal(shipped.enlarge(faces[:3], 200), lanczos(shipped.learned(faces[:3]), 200))
    assert shipped.enlarge(faces[:3], 64).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="below"):
        shipped.enlarge(faces, 47)
    assert np.array_equal(Enlarger(None).enlarge(faces[:3], 96), lanczos(faces[:3], 96))  # no network: Lanczos


def test_a_face_is_the_same_alone_and_in_any_batch(shipped, faces):
    together = shipped.learned(faces)
    alone = np.concatenate([shipped.learned(faces[i:i + 1]) for i in range(len(faces))])
    assert np.array_equal(together, alone)
    torch.set_num_threads(2)
    assert np.array_equal(shipped.learned(faces[5:9]), together[5:9])  # the caller's threads do not matter


def test_each_face_to_its_own_size_in_one_pass(shipped, faces):
    """A batch of faces asked at different sizes: each as ``enlarge`` gives it alone, and the
    network runs once for all those above 48 px."""
    passes = []
    counting = Enlarger(shipped.model)
    counting.learned = lambda f: passes.append(len(f)) or shipped.learned(f)
    sizes = [48, 96, 64, 200, 48, 96]
    got = counting.enlarge_each(faces[:6], sizes)
    assert passes == [4]
    for face, size, g in zip(faces[:6], sizes, got, strict=True):
        assert g.shape == (size, size) and np.array_equal(g, shipped.enlarge(face[None], size)[0])
    assert np.array_equal(counting.enlarge_each(faces[:2], [48, 48])[1], faces[1]) and passes == [4]  # no pass
    with pytest.raises(ValueError, match="sizes"):
        shipped.enlarge_each(faces[:2], [96])
    with pytest.raises(ValueError, match="below"):
        shipped.enlarge_each(faces[:2], [96, 40])


def test_the_shipped_upsampler_restores_detail_lanczos_cannot(shipped, faces):
    """At the scale it learnt (24 -> 48 px), on the shipped generator's faces, which it never saw:
    closer to the 48 px face than Lanczos by at least 1 dB (its card: about 2 dB on real faces)."""
    small = reduce(faces, 24)
    net, lz = psnr(shipped.learned(small), faces), psnr(lanczos(small, 48), faces)
    assert net > lz + 1.0, (net, lz)


def test_the_shipped_file_and_card():
    loaded = checkpoint.load(SHIPPED_UPSAMPLER, arch="face-upsampler")
    assert loaded.meta["data"]["dataset"] == "FER-2013" and loaded.meta["data"]["split"] == "Training"
    assert loaded.meta["metrics"]["steps"] == 3000 and SHIPPED_UPSAMPLER.with_suffix(".md").exists()
    assert SHIPPED_UPSAMPLER.stat().st_size < 200_000
