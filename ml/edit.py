"""Editing the expression of the face in a photo: find it, align it, edit a 48 px grey crop with
the expression editor (``ml/models/editor.py``), and add the change back at full resolution.

* **Finding the face**: OpenCV's Viola-Jones cascades, which ship inside the ``opencv-python-headless``
  wheel (nothing is downloaded): the frontal-face cascade on a copy at most
  :data:`DETECT_SIDE` px, then the eye cascade in the face's upper half for the eye line. With
  several faces, the largest is edited. The copy's size, the scale step (1.15) and the smallest
  face (:data:`MIN_FACE`) were set for speed: on the London set's 102 photos they find 101 faces
  in about 30 ms each, where 512 px, steps of 1.1 and 5% found 101 in 83 ms (2026-12-06, 2 cores
  shared with a training job).
* **Aligning**: the face box is rotated so the eyes are level and scaled to 48x48, the framing of
  FER-2013's faces (on which the editor learnt).
* **Adding back**: the editor's change (edited crop minus crop) is warped back to the photo with
  the inverse transform, bicubic, and faded to zero over the crop's outer :data:`MARGIN` (a
  fraction of its side), then added to R, G and B alike: luma changes, the colour differences stay,
  so skin and lips keep their colour; the photo's own fine detail stays under the change. Pixels
  outside the face box are never touched.

Deterministic: the same photo and emotion give the same bytes on one machine (the editor's
forward runs on one intra-op thread, as ``ml.generate`` draws).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ml import checkpoint
from ml.generate import one_thread
from ml.labels import FER_CLASSES, fer_index
from ml.photo import NoFaceError

log = logging.getLogger(__name__)
CROP = 48
DETECT_SIDE = 384  # detection runs on a copy whose longer side is at most this
MIN_FACE = 0.1  # a face narrower than this share of the detection copy's shorter side is ignored
STRIP = 256  # rows of the photo changed at a time
MARGIN = 0.18  # the change fades out over this share of the crop's side, inside the face box
_CASCADES = Path(cv2.data.haarcascades)


@dataclass(frozen=True)
class Face:
    """A face in photo coordinates: its box's centre, side (px) and eye-line angle (degrees)."""

    cx: float
    cy: float
    side: float
    angle: float

    def to_crop(self, size: int = CROP) -> np.ndarray:
        """The 2x3 affine map from photo pixels to the aligned ``size`` x ``size`` crop."""
        m = cv2.getRotationMatrix2D((self.cx, self.cy), self.angle, size / self.side)
        m[:, 2] += (size / 2 - self.cx, size / 2 - self.cy)
        return m


class FaceFinder:
    """The largest frontal face and its eye line. Cascade objects are not thread-safe: one per thread."""

    def __init__(self) -> None:
        self.face = cv2.CascadeClassifier(str(_CASCADES / "haarcascade_frontalface_default.xml"))
        self.eye = cv2.CascadeClassifier(str(_CASCADES / "haarcascade_eye.xml"))
        if self.face.empty() or self.eye.empty():
            raise RuntimeError(f"OpenCV's cascades are missing under {_CASCADES}")

    def find(self, grey: np.ndarray) -> Face | None:
        h, w = grey.shape
        scale = min(1.0, DETECT_SIDE / max(h, w))
        small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
        small = cv2.equalizeHist(small)
        min_side = max(24, round(MIN_FACE * min(small.shape)))
        boxes = self.face.detectMultiScale(small, scaleFactor=1.15, minNeighbors=5, minSize=(min_side, min_side))
        if len(boxes) == 0:
            return None
        x, y, bw, bh = (int(v) for v in max(boxes, key=lambda b: (b[2] * b[3], -b[1], -b[0])))
        angle = self._eye_angle(small[y:y + bh * 5 // 8, x:x + bw], bw)
        return Face(cx=(x + bw / 2) / scale, cy=(y + bh / 2) / scale, side=bw / scale, angle=angle)

    def _eye_angle(self, upper: np.ndarray, side: int) -> float:
        """The eye line's angle, from the two largest eyes found left and right of the middle; 0
        when they are not found or disagree with a face (tilted more than 25 degrees)."""
        eyes = self.eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=5, minSize=(side // 10, side // 10))
        centres = [(x + w / 2, y + h / 2) for x, y, w, h in sorted(eyes, key=lambda e: -e[2] * e[3])]
        left = next((c for c in centres if c[0] < side / 2), None)
        right = next((c for c in centres if c[0] >= side / 2), None)
        if left is None or right is None:
            return 0.0
        angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
        return angle if abs(angle) <= 25 else 0.0


def fade_window(size: int = CROP, margin: float = MARGIN) -> np.ndarray:
    """(size, size) weights: 1 in the middle, a cosine fall to 0 over ``margin`` of the side at each edge."""
    ramp = max(1, round(margin * size))
    t = np.ones(size, np.float32)
    edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    t[:ramp], t[-ramp:] = edge, edge[::-1]
    return np.outer(t, t)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8, ITU-R BT.601 (what FER-2013's grey faces are). OpenCV's
    conversion makes no float copy of the photo: 16.8 megapixels would need 200 MB as float32 RGB."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def aligned_crop(grey: np.ndarray, face: Face, size: int = CROP) -> np.ndarray:
    """The face's aligned ``size`` x ``size`` crop of a grey photo (float32, 0-255). The face's
    neighbourhood is first reduced by area averaging (no aliasing) to twice the crop's scale, so a
    large face costs a few MB, not a float copy of it."""
    x0, y0 = max(0, int(face.cx - face.side)), max(0, int(face.cy - face.side))
    x1, y1 = int(face.cx + face.side) + 1, int(face.cy + face.side) + 1
    region = grey[y0:y1, x0:x1]
    f = min(1.0, 2 * size / face.side)
    if f < 1:
        region = cv2.resize(region, (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f))),
                            interpolation=cv2.INTER_AREA)
        f = region.shape[1] / (min(x1, grey.shape[1]) - x0)  # the scale the rounding left
    m = face.to_crop(size)
    # the map from the reduced region's pixels: photo x = x0 + (u + 0.5) / f - 0.5
    start = np.array([x0 + 0.5 / f - 0.5, y0 + 0.5 / f - 0.5])
    m[:, 2] += m[:, :2] @ start
    m[:, :2] /= f
    return cv2.warpAffine(region.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


class ExpressionEditor:
    """A loaded editor: photo (H, W, 3) uint8 + emotion -> the same photo with that expression."""

    def __init__(self, model: torch.nn.Module) -> None:
        assert model.config.n_classes == len(FER_CLASSES)
        self.model = model.cpu().eval()
        self.window = fade_window()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> tuple[ExpressionEditor, checkpoint.Loaded]:
        loaded = checkpoint.load(path, arch="expression-editor", labels=FER_CLASSES)
        return cls(loaded.model), loaded

    @torch.inference_mode()
    def edit_crops(self, crops: np.ndarray, classes: list[int]) -> np.ndarray:
        """(N, 48, 48) float 0-255 crops -> the edited crops, same range."""
        x = torch.from_numpy(np.ascontiguousarray(crops, np.float32)).div(127.5).sub(1).unsqueeze(1)
        with one_thread():
            out = self.model(x, torch.tensor(classes, dtype=torch.long))
        return ((out[:, 0].clamp(-1, 1) + 1) * 127.5).numpy()

    def edit(self, rgb: np.ndarray, emotion: str, face: Face, grey: np.ndarray | None = None) -> np.ndarray:
        """A copy of ``rgb`` with the face's expression changed to ``emotion`` (a project emotion);
        ``grey``: its :func:`luma` when known. (A decoded photo is read-only, so it is always copied.)"""
        grey = luma(rgb) if grey is None else grey
        crop = aligned_crop(grey, face)
        change = (self.edit_crops(crop[None], [fer_index(emotion)])[0] - crop) * self.window
        inverse = cv2.invertAffineTransform(face.to_crop())
        # the change is warped back over the face box's bounding rectangle only
        corners = np.array([[0, 0, 1], [CROP, 0, 1], [0, CROP, 1], [CROP, CROP, 1]], np.float64) @ inverse.T
        h, w = grey.shape
        x0, y0 = (max(0, int(np.floor(v))) for v in corners.min(0))
        x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 1), min(h, int(np.ceil(corners[:, 1].max())) + 1)
        out = rgb.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        change = change.astype(np.float32)
        for top in range(y0, y1, STRIP):  # in strips of rows: a large face never needs a float copy of itself
            bottom = min(y1, top + STRIP)
            shifted = inverse.copy()
            shifted[:, 2] -= (x0, top)
            delta = cv2.warpAffine(change, shifted, (x1 - x0, bottom - top), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            region = out[top:bottom, x0:x1].astype(np.float32) + delta[:, :, None]
            out[top:bottom, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
        return out


def edit_photo(editor: ExpressionEditor, finder: FaceFinder, rgb: np.ndarray, emotion: str,
               orientation: int = 1) -> tuple[np.ndarray, Face]:
    """Find the largest face and edit it; :class:`NoFaceError` when there is none."""
    grey = luma(rgb)
    face = finder.find(grey)
    if face is None:
        turned = f" (after turning it by its EXIF orientation {orientation})" if orientation != 1 else ""
        raise NoFaceError(f"no frontal face was found in the {rgb.shape[1]}x{rgb.shape[0]} photo{turned}")
    return editor.edit(rgb, emotion, face, grey), face
