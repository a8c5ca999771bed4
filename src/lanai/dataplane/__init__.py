"""The protocol-neutral core that every door (HTTP, gRPC) calls: see ``plane.DataPlane``."""

from lanai.dataplane.plane import DataPlane

__all__ = ["DataPlane"]
