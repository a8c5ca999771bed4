"""Giving freed memory back to the operating system, where the C library allows it."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import psutil

from lanai.telemetry.cpus import cgroup_folders

__all__ = ["release_free_memory", "usable_memory"]


def usable_memory(root: Path = Path("/")) -> int:
    """Bytes of memory this process may use: the machine's RAM, or less where a cgroup on the process's
    own path says so (Docker ``--memory``, a k3s limit, systemd ``MemoryMax=``): v2's ``memory.max``, or
    v1's ``memory.limit_in_bytes``."""
    limits = [psutil.virtual_memory().total]
    files = [f / "memory.max" for f in cgroup_folders(root)]
    files += [f / "memory.limit_in_bytes" for f in cgroup_folders(root, v1="memory")]
    for file in files:
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            limits.append(int(text))
    return min(limits)


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
