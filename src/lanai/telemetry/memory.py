"""Giving freed memory back to the operating system, where the C library allows it."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_free_memory"]


def release_free_memory() -> bool:
    """Return freed heap pages to the OS (glibc ``malloc_trim``); True if it could.

    Loading a model to check it, or swapping versions, frees tens of MB that glibc otherwise keeps
    mapped, and a small box's RSS is what its owner watches.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))
