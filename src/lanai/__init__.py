"""lanai: a private, fast model server for a small box on your LAN."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
