"""Decoders that fail as FFmpeg can, for the service's child process to run in place of PyAV.
A module of their own that imports nothing heavy: the child imports it by name, and it must
start as fast as the real decoder's child does."""

import os
import time


def crash(data: bytes, *, max_duration_s: float):
    os.abort()  # what a segfault in FFmpeg does to its process


def hang(data: bytes, *, max_duration_s: float):
    time.sleep(3600)
    raise AssertionError("unreachable")


def hog(data: bytes, *, max_duration_s: float):
    """Asks for 2 GB, as FFmpeg does for a crafted sample table: the child's limit must refuse it."""
    block = bytearray(2 << 30)
    return len(block)


def write_file(data: bytes, *, max_duration_s: float):
    """Opens a file, as a playlist demuxer would: the child may open none."""
    with open("/etc/hostname", "rb") as fh:
        return fh.read()


def modules(data: bytes, *, max_duration_s: float):
    """What the child has imported: the test checks torch is not among them."""
    import sys

    return sorted(sys.modules)
