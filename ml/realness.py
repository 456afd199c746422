"""A classifier two-sample test of realness: a small CNN trained fresh to tell generated faces
from real ones, then scored on faces it never saw. It judges no expression, only "real or
drawn": its accuracy (0.5 = it cannot tell) and how often it is over 90% sure that a generated
face is generated say how many faces a person would not keep (``ml/evaluate_gan.py``).

The network is defined and trained here and nowhere else; it is never saved: every evaluation
trains its own, with a fixed seed, on a split the choices were not made on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.models.gan import from_uint8
from ml.runtime import seed_everything

#: "Sure": the classifier's probability that a generated face is generated, above this.
SURE = 0.9


class RealnessNet(nn.Module):
    """48x48 grey face -> logit that it is generated. Three conv blocks, global average pool."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width]
        # GroupNorm, not BatchNorm: a face's score never depends on its batch or on running statistics
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8, b), nn.ReLU(),
                                                  nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(8, b), nn.ReLU(),
                                                  nn.MaxPool2d(2)) for a, b in zip(chans, chans[1:]))
        self.out = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.out(x.mean((2, 3))).squeeze(1)


@dataclass
class TwoSampleResult:
    accuracy: float  # on the held-out faces, real and generated counting equally
    sure_share: float  # generated held-out faces it calls generated with probability > SURE
    fake_probability: np.ndarray  # (n_fake_test,) its probability that each generated test face is generated


def train(real: np.ndarray, fake: np.ndarray, *, epochs: int = 10, batch: int = 128, seed: int = 0) -> RealnessNet:
    """A :class:`RealnessNet` trained on uint8 faces (N, 48, 48), real and generated counting
    equally, with random horizontal flips; returned in eval mode."""
    g = seed_everything(seed)
    x = torch.cat([from_uint8(real), from_uint8(fake)])
    y = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])
    w = torch.cat([torch.full((len(real),), 0.5 / len(real)), torch.full((len(fake),), 0.5 / len(fake))])
    model = RealnessNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs * len(x) // batch):
        idx = torch.multinomial(w, batch, replacement=True, generator=g)
        xb = x[idx]
        flip = torch.rand(len(idx), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        loss = F.binary_cross_entropy_with_logits(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.inference_mode()
def logits(model: RealnessNet, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """The model's logit that each uint8 face (N, 48, 48) is generated."""
    return torch.cat([model(b) for b in from_uint8(faces).split(batch)]).numpy()


def two_sample_test(real_train: np.ndarray, fake_train: np.ndarray, real_test: np.ndarray, fake_test: np.ndarray,
                    *, epochs: int = 10, batch: int = 128, seed: int = 0) -> TwoSampleResult:
    """Train a :class:`RealnessNet` on uint8 faces (N, 48, 48), real and generated (:func:`train`);
    score it on the test faces, which it never saw."""
    model = train(real_train, fake_train, epochs=epochs, batch=batch, seed=seed)
    p_real = 1 / (1 + np.exp(-logits(model, real_test)))
    p_fake = 1 / (1 + np.exp(-logits(model, fake_test)))
    accuracy = 0.5 * float((p_real < 0.5).mean()) + 0.5 * float((p_fake > 0.5).mean())
    return TwoSampleResult(accuracy, float((p_fake > SURE).mean()), p_fake)
