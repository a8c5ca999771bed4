"""``inference.GRPCInferenceService`` on the data plane: each RPC parses its message at the edge (see
``codec``), makes one data-plane call, and encodes the answer; errors end the call with the status of
``errors``. The interceptor has admitted the caller; the RPCs that name a model check that the caller's
key may use it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from lanai.dataplane import DataPlane
from lanai.errors import BadInput, LanaiError, ModelNotFound
from lanai.grpc import codec
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.errors import rpc_error
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceServicer
from lanai.grpc.interceptor import CALLER
from lanai.protocol.v2 import refuse_load_parameters
from lanai.security.guard import Guard

__all__ = ["InferenceServicer", "SERVICE_NAME"]

SERVICE_NAME = "inference.GRPCInferenceService"

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def _mapped(method: Method[Request, Response]) -> Method[Request, Response]:
    """End the call with the status of the error it raised: lanai's errors by ``errors.rpc_error``, any
    other as INTERNAL (logged here, never a traceback to the client)."""

    @functools.wraps(method)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await method(self, request, context)
        except LanaiError as exc:
            error = rpc_error(exc)
            await context.abort(error.code, error.details, error.trailing_metadata)
        except Exception as exc:
            log.exception("unexpected error in gRPC %s", method.__name__)
            details = f"internal error ({type(exc).__name__}); the server log has the details."
            await context.abort(grpc.StatusCode.INTERNAL, details)
        raise AssertionError("abort() returned")  # pragma: no cover

    return call


class InferenceServicer(GRPCInferenceServiceServicer):
    """The Open Inference Protocol's RPCs and Triton's model repository RPCs, over ``plane``."""

    def __init__(self, plane: DataPlane, guard: Guard) -> None:
        self._plane = plane
        self._guard = guard

    def _model(self, value: str, field: str = "name") -> str:
        """The model a request names, if the caller may use it."""
        name = _name(value, field)
        self._guard.check_model(CALLER.get(), name)
        return name

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._plane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._plane.ready())

    @_mapped
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._plane.model_ready(self._model(request.name), request.version or None))

    @_mapped
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return codec.server_metadata_message(self._plane.server_metadata())

    @_mapped
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        metadata = self._plane.model_metadata(self._model(request.name), request.version or None)
        return codec.model_metadata_message(metadata)

    @_mapped
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        name = self._model(request.model_name, "model_name")
        infer_request, raw = codec.parse_infer_request(request)
        response = await self._plane.infer(name, infer_request, request.model_version or None)
        return codec.encode_infer_response(response, raw)

    @_mapped
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        _repository(request.repository_name)
        who = CALLER.get()  # a key limited to some models sees only those
        entries = [e for e in self._plane.repository_index(ready_only=request.ready) if who.allows_model(e.name)]
        return codec.repository_index_message(entries)

    @_mapped
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        _repository(request.repository_name)
        refuse_load_parameters(request.model_name, request.parameters)
        await self._plane.load(_name(request.model_name, "model_name"))
        return pb.RepositoryModelLoadResponse()

    @_mapped
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        _repository(request.repository_name)
        # unload_dependents (tritonclient sends it) has nothing to do: lanai's models have no dependents
        await self._plane.unload(_name(request.model_name, "model_name"))
        return pb.RepositoryModelUnloadResponse()


def _name(value: str, field: str = "name") -> str:
    if not value:
        raise BadInput(f"the request's {field} is empty.", hint="name the model, e.g. efficientnet-lite0.")
    return value


def _repository(name: str) -> None:
    if name:
        raise ModelNotFound(
            f"no model repository named {name!r}: lanai has one, its store.", hint="leave repository_name empty."
        )
