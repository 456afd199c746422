"""Photos in: the one place an uploaded image is opened, checked and decoded (Pillow).

A photo is accepted when it is a still JPEG, PNG or WebP of 8-bit greyscale or RGB, between
:data:`MIN_SIDE` px on its shorter side and :data:`MAX_PIXELS` pixels, with a valid EXIF
orientation (applied). Everything else is refused with a :class:`PhotoError` that names what
was wrong, before the pixels are decoded where the header tells: a 30000x30000 "bomb" costs
a header read, not 2.7 GB. What is refused, and why (a decision; the README says so too):

* transparency (RGBA, LA, a palette with a transparent colour): what lies under the
  transparent part is not known, and the answer is an opaque PNG of the same size;
* CMYK and 16-bit images: print and scientific formats, whose conversion to the screen's 8-bit
  RGB needs a colour profile the service does not guess at;
* animations (GIF is not accepted at all; animated PNG and WebP): which frame is the photo?
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 4096 * 4096  # 16.8 MP: a phone's 12 MP photo fits; the decode stays under 60 MB of RGB
MIN_SIDE = 48  # a face needs at least FER-2013's 48 px
ORIENTATION_TAG = 0x0112

# Pillow's own bomb guard would warn at MAX_IMAGE_PIXELS and raise at twice it; ours is stricter
# and raises first, so the guard is left as a backstop.


class PhotoError(ValueError):
    """The upload cannot be used as a photo; the subclass says why (each has its HTTP problem type)."""


class UndecodableImageError(PhotoError):
    """Not an image Pillow reads, or not JPEG / PNG / WebP."""


class TruncatedImageError(PhotoError):
    """The image's data ends before its pixels do."""


class ImageTooLargeError(PhotoError):
    """More pixels than :data:`MAX_PIXELS`."""


class ImageTooSmallError(PhotoError):
    """Shorter side under :data:`MIN_SIDE`."""


class UnsupportedImageError(PhotoError):
    """An image of a kind the service does not edit: animated, CMYK, 16-bit, transparent."""


class BadOrientationError(PhotoError):
    """An EXIF orientation outside 1-8."""


class NoFaceError(PhotoError):
    """No face was found in the photo."""


@dataclass
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8, upright (EXIF orientation applied)
    format: str  # JPEG, PNG or WEBP
    orientation: int  # the EXIF orientation that was applied (1 = none)


def _sniff(head: bytes) -> str:
    """What a file that Pillow cannot read looks like, for the error message."""
    text = head.lstrip()[:64].lower()
    for magic, name in ((b"%pdf", "a PDF document"), (b"<svg", "an SVG drawing"), (b"<?xml", "an XML (SVG?) document"),
                        (b"<!doctype html", "an HTML page"), (b"<html", "an HTML page")):
        if text.startswith(magic):
            return name
    for magic, name in ((b"GIF8", "a GIF image"), (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"),
                        (b"MM\x00*", "a TIFF image"), (b"\xff\xd8", "a corrupt JPEG"), (b"\x89PNG", "a corrupt PNG")):
        if head.startswith(magic):
            return name
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIC or AVIF image"
    return "no image format this service reads"


def _png_bit_depth(head: bytes) -> int | None:
    """The bit depth in a PNG's IHDR (Pillow reduces 16-bit RGB to 8 bits without saying so)."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 25:
        return head[24]
    return None


def load_photo(file: BinaryIO | bytes) -> Photo:
    """Open, check and decode an upload into upright 8-bit RGB; raise a :class:`PhotoError` naming
    what is wrong. Only the header is read before the size and kind are known to be acceptable."""
    data = file if isinstance(file, bytes) else file.read()
    if not data:
        raise UndecodableImageError("the uploaded photo is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # only these decoders are tried: Pillow's others include EPS, which runs Ghostscript
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError, OSError,
            SyntaxError, ValueError, struct.error) as exc:
        if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
            raise ImageTooLargeError(f"the photo declares over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                                     f"(a decompression bomb?); at most {MAX_PIXELS / 1e6:.1f} are accepted") from exc
        raise UndecodableImageError(f"not a JPEG, PNG or WebP image: it looks like {_sniff(data[:256])}; "
                                    "send a JPEG, PNG or WebP photo") from exc
    with img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ImageTooLargeError(f"the photo is {w}x{h} = {w * h / 1e6:.1f} megapixels; at most "
                                     f"{MAX_PIXELS / 1e6:.1f} are accepted (4096x4096)")
        if min(w, h) < MIN_SIDE:
            raise ImageTooSmallError(f"the photo is {w}x{h}; its shorter side must be at least {MIN_SIDE} px")
        if getattr(img, "is_animated", False) or getattr(img, "n_frames", 1) > 1:
            raise UnsupportedImageError(f"the photo is an animation of {getattr(img, 'n_frames', '?')} frames; "
                                        "send one still image")
        if img.mode == "CMYK":
            raise UnsupportedImageError("the photo is CMYK (a print format); save it as RGB and send it again")
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F") or (_png_bit_depth(data[:32]) or 8) > 8:
            raise UnsupportedImageError("the photo has 16 bits per channel; save it with 8 bits (RGB or greyscale)")
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
            raise UnsupportedImageError("the photo has transparency (an alpha channel); flatten it onto a "
                                        "background and send it again")
        if img.mode not in ("RGB", "L", "P", "YCbCr"):
            raise UnsupportedImageError(f"photos of pixel mode {img.mode} are not accepted; send 8-bit RGB or greyscale")
        try:
            orientation = int(img.getexif().get(ORIENTATION_TAG, 1))
        except Exception as exc:  # Pillow raises many types for a malformed EXIF block
            raise BadOrientationError(f"the photo's EXIF block cannot be read: {exc}") from exc
        if not 1 <= orientation <= 8:
            raise BadOrientationError(f"the photo's EXIF orientation is {orientation}; valid values are 1 to 8")
        try:
            img.load()
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img
            rgb = np.asarray(upright if upright.mode == "RGB" else upright.convert("RGB"))  # no copy when RGB
        except OSError as exc:
            raise TruncatedImageError(f"the photo's data is incomplete or corrupt: {exc}") from exc
    return Photo(rgb=rgb, format=img.format, orientation=orientation)
