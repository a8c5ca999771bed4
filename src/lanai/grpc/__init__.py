"""The gRPC door: the Open Inference Protocol's ``inference.GRPCInferenceService``, ``grpc.health.v1``
and server reflection, on the data plane that the HTTP door also serves.

grpcio is an optional dependency (the ``grpc`` extra). Importing this package never imports it; the
modules under it do, so check :func:`available` before importing ``lanai.grpc.server``.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["available", "INSTALL_HINT"]

# gRPC's fork support runs handlers around every fork() and logs a warning when other threads are in gRPC.
# lanai never uses gRPC in a forked child: its only children (a model's first load, backends.canary) exec
# a new interpreter at once. Off, unless the environment says otherwise; read when grpcio is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

INSTALL_HINT = "pip install 'lanai[grpc]'"
_MODULES = ("grpc", "grpc_health.v1", "grpc_reflection.v1alpha", "google.protobuf")


def available() -> bool:
    """Whether the gRPC door can run: grpcio, its health and reflection services and protobuf are
    installed. Looks them up without importing them."""
    for module in _MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except ModuleNotFoundError:  # a parent package is missing
            return False
    return True
