"""Expression editor for 48x48 grey faces: StarGAN's conditional image-to-image generator
(Choi et al. 2018) with GANimation's attention mask (Pumarola et al. 2018).

image (B, 1, 48, 48) in [-1, 1] + target class (B,) -> edited image. The network draws a new
image ``C`` and a mask ``M`` in [0, 1]; the edit is ``M * C + (1 - M) * x``, so where the mask is
0 the input passes through untouched. The mask is what lets an edit leave hair, background and
skin alone and change the mouth, brows and eyes. The target enters as a one-hot map beside the
image (StarGAN) and again at the bottleneck. Instance normalisation: each face's numbers depend
on that face alone (up to float rounding: oneDNN blocks a batch unlike a single face, about 1e-5
of a grey level apart; the service and the evaluation edit one face per call).

The recipe (adversarial and classification losses through ``ml.models.gan.Discriminator``, cycle
reconstruction, mask sparsity) is in ``ml/train_editor.py``; how an edit is pasted back into a
photo is in ``ml/edit.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class EditorConfig:
    n_classes: int = 7
    base_channels: int = 16  # at 48x48; 2x at 24x24, 4x at 12x12
    res_blocks: int = 2  # at 12x12


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), _norm(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), _norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Editor(nn.Module):
    """A small U-Net: 48 -> 24 -> 12 (residual blocks) -> 24 -> 48, skips at 24 and 48."""

    def __init__(self, config: EditorConfig) -> None:
        super().__init__()
        self.config = config
        c, k = config.base_channels, config.n_classes

        def block(c_in: int, c_out: int, **kw) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, bias=False, **kw), _norm(c_out), nn.ReLU())

        self.inc = block(1 + k, c, kernel_size=3, padding=1)  # 48
        self.down1 = block(c, 2 * c, kernel_size=4, stride=2, padding=1)  # 24
        self.down2 = block(2 * c, 4 * c, kernel_size=4, stride=2, padding=1)  # 12
        self.mid_in = block(4 * c + k, 4 * c, kernel_size=1)
        self.mid = nn.Sequential(*[ResBlock(4 * c) for _ in range(config.res_blocks)])
        # nearest-neighbour upsampling, then a 3x3 conv: transposed convolutions drew checkerboard
        # dots that fooled D's classifier (Odena et al. 2016; docs/experiments/editor.md)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), block(4 * c, 2 * c, kernel_size=3, padding=1))
        self.fuse1 = block(4 * c, 2 * c, kernel_size=3, padding=1)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), block(2 * c, c, kernel_size=3, padding=1))
        self.fuse2 = block(2 * c, c, kernel_size=3, padding=1)
        self.colour = nn.Conv2d(c, 1, 3, padding=1)
        self.mask = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, return_mask: bool = False):
        onehot = F.one_hot(y, self.config.n_classes).to(x.dtype)[:, :, None, None]
        h48 = self.inc(torch.cat([x, onehot.expand(-1, -1, *x.shape[2:])], 1))
        h24 = self.down1(h48)
        h = self.down2(h24)
        h = self.mid(self.mid_in(torch.cat([h, onehot.expand(-1, -1, *h.shape[2:])], 1)))
        h = self.fuse1(torch.cat([self.up1(h), h24], 1))
        h = self.fuse2(torch.cat([self.up2(h), h48], 1))
        mask = torch.sigmoid(self.mask(h))
        out = mask * torch.tanh(self.colour(h)) + (1 - mask) * x
        return (out, mask) if return_mask else out
