"""The gRPC door over real sockets: tritonclient.grpc unchanged, health, reflection, errors, keys and roles
(and the older single API key), a full queue, and the door's own start and stop."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

from lanai.bundled import DEFAULT_MODEL, DEFAULT_PREPROCESS, bundled_model_dir, inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.errors import ConfigError
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.grpc.server import GrpcDoor
from lanai.security.keys import KeyRing
from lanai.store import Store
from lanai.tasks.image import image_to_tensor
from lanai.types import BatchingConfig

from support import TINY_PREPROCESS, ServerThread, make_store, tiny_logits

SERVICE = "inference.GRPCInferenceService"
KEY = "sesame"


@dataclass
class Served:
    url: str
    address: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[Served]:
    """``lanai serve`` (data plane, HTTP and gRPC doors) on the bundled model and the tiny classifiers."""
    store = make_store(tmp_path_factory.mktemp("grpc-store"), model_files)
    settings = Settings(home=store.root, max_body_bytes=2 * 2**20, intra_op_threads=2)
    server = ServerThread(DataPlane(store, settings), settings)
    with server as url:
        yield Served(url, server.grpc_address)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(served.address) as found:
        yield found


def status(exc: InferenceServerException) -> str:
    return str(exc.status()).removeprefix("StatusCode.")


def photo_tensor(photos: dict[str, bytes], *names: str) -> np.ndarray:
    return np.concatenate([image_to_tensor(photos[name], DEFAULT_PREPROCESS) for name in names])


def infer_input(array: np.ndarray, name: str = "input") -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def test_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server.name == "lanai" and "model_repository" in server.extensions
    model = client.get_model_metadata(DEFAULT_MODEL)
    assert (model.name, list(model.versions), model.platform) == (DEFAULT_MODEL, ["1"], "onnx_onnxv1")
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("input", "FP32", [-1, 3, 224, 224])]
    assert client.is_model_ready(DEFAULT_MODEL) and client.is_model_ready(DEFAULT_MODEL, "1")
    assert not client.is_model_ready(DEFAULT_MODEL, "7") and not client.is_model_ready("nope")


def test_infer_with_raw_contents_matches_onnxruntime(
    client: triton.InferenceServerClient, photos: dict[str, bytes]
) -> None:
    pixels = photo_tensor(photos, "chelsea", "coffee")
    result = client.infer(DEFAULT_MODEL, [infer_input(pixels)], request_id="r-7")
    logits = result.as_numpy("logits")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (DEFAULT_MODEL, "1", "r-7")
    session = ort.InferenceSession(str(bundled_model_dir() / "model.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["logits"], {"input": pixels})
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert list(logits.argmax(1)) == list(expected.argmax(1))
    assert 281 <= logits[0].argmax() <= 285  # chelsea is a cat (ImageNet 281–285)
    np.testing.assert_allclose(logits, expected, atol=1e-3)


def test_typed_contents_are_answered_in_kind(served: Served) -> None:
    pixels = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=pixels.shape)
    tensor.contents.fp32_contents.extend(pixels.ravel().tolist())
    with grpc.insecure_channel(served.address) as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert not response.raw_output_contents and list(response.outputs[0].shape) == [2, 5]
    got = np.array(response.outputs[0].contents.fp32_contents, dtype=np.float32).reshape(2, 5)
    np.testing.assert_allclose(got, tiny_logits(pixels), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda c: c.get_model_metadata("nope"), "NOT_FOUND", "no model named 'nope' is loaded. Hint: loaded models:"),
        (lambda c: c.get_model_metadata(DEFAULT_MODEL, "7"), "NOT_FOUND", "has version 1 loaded, not '7'"),
        (lambda c: c.infer(DEFAULT_MODEL, [infer_input(np.zeros((1, 3, 224, 224), np.float32), "image")]),
         "INVALID_ARGUMENT", "has no input named image. Hint: its inputs are input."),
        (lambda c: c.infer(DEFAULT_MODEL, [infer_input(np.zeros((1, 3, 32, 32), np.float32))]),
         "INVALID_ARGUMENT", "has shape [1, 3, 32, 32], the model takes [-1, 3, 224, 224]"),
        (lambda c: c.infer(DEFAULT_MODEL, [infer_input(np.zeros((4, 3, 224, 224), np.float32))]),
         "RESOURCE_EXHAUSTED", "larger than max"),
        (lambda c: c.load_model("nope"), "NOT_FOUND", "nope"),
        (lambda c: c.load_model("tiny", config="{}"), "INVALID_ARGUMENT", "takes no load parameters (config)"),
    ],
)  # fmt: skip
def test_errors_have_the_right_code_and_say_what_to_do(
    client: triton.InferenceServerClient, call: object, code: str, message: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        call(client)  # type: ignore[operator]
    assert status(caught.value) == code and message in caught.value.message(), caught.value.message()


def test_lanai_has_one_repository(served: Served) -> None:
    with grpc.insecure_channel(served.address) as channel, pytest.raises(grpc.RpcError) as caught:
        GRPCInferenceServiceStub(channel).RepositoryIndex(pb.RepositoryIndexRequest(repository_name="other"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert "Hint: leave repository_name empty." in caught.value.details()  # type: ignore[attr-defined]


def health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status  # type: ignore[no-any-return]


def test_repository_unload_then_load_with_health_per_model(
    client: triton.InferenceServerClient, served: Served
) -> None:
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    index = {m.name: m for m in client.get_model_repository_index().models}
    assert {n: (m.version, m.state) for n, m in index.items()} == {
        DEFAULT_MODEL: ("1", "READY"), "tiny": ("1", "READY"), "tiny-fixed": ("1", "READY"),
    }  # fmt: skip
    assert [health(served.address, s) for s in ("", SERVICE, "tiny")] == [serving] * 3

    client.unload_model("tiny")
    assert not client.is_model_ready("tiny") and health(served.address, "tiny") == not_serving
    unloaded = {m.name: m for m in client.get_model_repository_index().models}["tiny"]
    assert (unloaded.state, unloaded.reason) == ("UNAVAILABLE", "not loaded")
    with grpc.insecure_channel(served.address) as channel:
        ready = GRPCInferenceServiceStub(channel).RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
    assert {m.name for m in ready.models} == {DEFAULT_MODEL, "tiny-fixed"}
    with pytest.raises(InferenceServerException) as caught:
        client.infer("tiny", [infer_input(np.zeros((1, 3, 8, 8), np.float32))])
    assert status(caught.value) == "NOT_FOUND"

    client.load_model("tiny")
    assert client.is_model_ready("tiny") and health(served.address, "tiny") == serving
    with pytest.raises(grpc.RpcError) as unknown:
        health(served.address, "nope")
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_health_watch_and_reflection(served: Served) -> None:
    with grpc.insecure_channel(served.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="tiny"), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
        from google.protobuf.descriptor_pool import DescriptorPool

        methods = DescriptorPool(database).FindServiceByName(SERVICE).methods_by_name
        assert {"ModelInfer", "RepositoryModelLoad"} <= set(methods)


def test_metrics_count_calls_by_method_and_code(client: triton.InferenceServerClient, served: Served) -> None:
    client.get_model_metadata(DEFAULT_MODEL)
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("nope")
    metrics = httpx.get(served.url + "/metrics", timeout=10).text
    ok = 'lanai_grpc_requests_total{code="OK",method="inference.GRPCInferenceService/ModelMetadata"}'
    missing = 'lanai_grpc_requests_total{code="NOT_FOUND",method="inference.GRPCInferenceService/ModelMetadata"}'
    assert ok in metrics and missing in metrics
    assert 'lanai_grpc_request_duration_seconds_count{method="inference.GRPCInferenceService/ModelInfer"}' in metrics


# -- a server with the older single API key (settings.api_key), a 1 MiB message limit and a queue of one ---


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[Served]:
    store = Store(tmp_path_factory.mktemp("grpc-strict"))
    one = BatchingConfig(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1)
    bundled = bundled_model_dir()
    store.add(
        bundled / "model.onnx", name=DEFAULT_MODEL, task="classify", labels=bundled / "labels.txt",
        preprocess=DEFAULT_PREPROCESS, batching=one, inspect=inspector("onnx"),
    )  # fmt: skip
    store.add(model_files["tiny"], name="tiny", task="classify", preprocess=TINY_PREPROCESS, inspect=inspector("onnx"))
    settings = Settings(home=store.root, api_key=KEY, max_body_bytes=2**20, intra_op_threads=1)
    server = ServerThread(DataPlane(store, settings), settings)
    with server as url:
        yield Served(url, server.grpc_address)


def test_the_api_key_guards_all_but_health(strict: Served) -> None:
    with triton.InferenceServerClient(strict.address) as client:
        assert client.is_server_live() and client.is_server_ready()  # open, as /v2/health/* over HTTP
        assert health(strict.address, "") == health_pb2.HealthCheckResponse.SERVING
        for headers in (None, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}):
            with pytest.raises(InferenceServerException) as caught:
                client.get_model_metadata("tiny", headers=headers)
            assert status(caught.value) == "UNAUTHENTICATED"
            assert "Hint: send the metadata 'authorization: Bearer <key>'" in caught.value.message()
        for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}):
            assert client.get_model_metadata("tiny", headers=headers).name == "tiny"
            pixels = np.zeros((1, 3, 8, 8), np.float32)
            assert client.infer("tiny", [infer_input(pixels)], headers=headers).as_numpy("logits").shape == (1, 5)
    with grpc.insecure_channel(strict.address) as channel, pytest.raises(grpc.RpcError) as refused:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    metrics = httpx.get(strict.url + "/metrics", headers={"authorization": f"Bearer {KEY}"}, timeout=10).text
    assert 'code="UNAUTHENTICATED",method="inference.GRPCInferenceService/ModelMetadata"' in metrics


def test_a_message_over_the_limit_is_resource_exhausted(strict: Served, photos: dict[str, bytes]) -> None:
    pixels = photo_tensor(photos, "chelsea", "coffee")  # 1.2 MB > 1 MiB
    with triton.InferenceServerClient(strict.address) as client, pytest.raises(InferenceServerException) as caught:
        client.infer(DEFAULT_MODEL, [infer_input(pixels)], headers={"x-api-key": KEY})
    assert status(caught.value) == "RESOURCE_EXHAUSTED"


def test_a_full_queue_is_resource_exhausted_with_retry_info(strict: Served, photos: dict[str, bytes]) -> None:
    pixels = photo_tensor(photos, "chelsea").tobytes()
    request = pb.ModelInferRequest(model_name=DEFAULT_MODEL, raw_input_contents=[pixels])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 3, 224, 224])

    async def burst() -> list[grpc.StatusCode | grpc.aio.AioRpcError]:
        async with grpc.aio.insecure_channel(strict.address) as channel:
            stub = GRPCInferenceServiceStub(channel)

            async def one() -> grpc.StatusCode | grpc.aio.AioRpcError:
                try:
                    await stub.ModelInfer(request, metadata=(("x-api-key", KEY),), timeout=60)
                except grpc.aio.AioRpcError as error:
                    return error
                return grpc.StatusCode.OK

            return await asyncio.gather(*(one() for _ in range(24)))

    results = asyncio.run(burst())
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert grpc.StatusCode.OK in results and refused, results
    for error in refused:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in error.details()
        trailers = dict(error.trailing_metadata())
        assert trailers["retry-after"].isdigit() and b"google.rpc.RetryInfo" in trailers["grpc-status-details-bin"]


# -- keys and roles; admin_loopback off, so that the test client on 127.0.0.1 stands for a laptop on the LAN ----


@dataclass
class Keyed:
    url: str
    address: str
    ring: KeyRing
    """The store's keys, as ``lanai keys`` (another process) sees them."""
    keys: dict[str, str]
    """Each key's text by its name."""


def keyed_server(root: Path, model_files: dict[str, Path], **options: object) -> Iterator[Keyed]:
    """A server on the tiny classifiers, with the keys the tests use made before it starts (the server reads
    its keys at most every half second, so a key made while it runs may take that long to work)."""
    store = Store(root)
    for name in ("tiny", "tiny-fixed"):
        store.add(model_files[name], name=name, task="classify", preprocess=TINY_PREPROCESS, inspect=inspector("onnx"))
    ring = KeyRing(store.root)
    keys = {
        "desk": ring.create("desk", "infer"),
        "ops": ring.create("ops", "admin"),
        "tiny-only": ring.create("tiny-only", "infer", models=["tiny"]),
        "laptop": ring.create("laptop", "infer"),
        "old": ring.create("old", "infer", expires_in=60, now=time.time() - 120),
        "slow": ring.create("slow", "infer", rate=1.0),
    }
    settings = Settings(home=store.root, admin_loopback=False, intra_op_threads=1, **options)  # type: ignore[arg-type]
    server = ServerThread(DataPlane(store, settings), settings)
    with server as url:
        yield Keyed(url, server.grpc_address, ring, keys)


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[Keyed]:
    """The default mode: inference open to callers without a key, admin actions for admin keys."""
    yield from keyed_server(tmp_path_factory.mktemp("grpc-lan"), model_files)


@pytest.fixture(scope="module")
def required(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[Keyed]:
    yield from keyed_server(tmp_path_factory.mktemp("grpc-required"), model_files, auth="required")


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def tiny_infer(model: str = "tiny") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[np.zeros((1, 3, 8, 8), np.float32).tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 3, 8, 8])
    return request


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def retry_delay(status: bytes) -> float:
    """The ``RetryInfo.retry_delay`` in a serialized ``google.rpc.Status``, read with protobuf alone."""
    from google.protobuf import any_pb2, duration_pb2, empty_pb2
    from google.protobuf.unknown_fields import UnknownFieldSet

    def fields(data: bytes) -> dict[int, list[bytes]]:
        found: dict[int, list[bytes]] = {}
        for field in UnknownFieldSet(empty_pb2.Empty.FromString(data)):
            found.setdefault(field.field_number, []).append(field.data)
        return found

    detail = any_pb2.Any.FromString(fields(status)[3][0])
    assert detail.type_url == "type.googleapis.com/google.rpc.RetryInfo"
    delay = duration_pb2.Duration.FromString(fields(detail.value)[1][0])
    return delay.seconds + delay.nanos / 1e9


def test_lan_mode_infers_without_a_key_and_administers_with_an_admin_key_only(lan: Keyed) -> None:
    infer, admin = lan.keys["desk"], lan.keys["ops"]
    unload = pb.RepositoryModelUnloadRequest(model_name="tiny-fixed")
    with grpc.insecure_channel(lan.address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert list(stub.ModelInfer(tiny_infer(), timeout=30).outputs[0].shape) == [1, 5]  # no key: fine
        assert stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=10).name == "tiny"
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
        assert {m.name for m in index.models} == {"tiny", "tiny-fixed"}
        assert SERVICE in set(ProtoReflectionDescriptorDatabase(channel).get_services())

        anonymous = refused(lambda: stub.RepositoryModelUnload(unload, timeout=10))
        assert anonymous.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert anonymous.details().startswith(  # type: ignore[attr-defined]
            "this needs an admin key. Hint: send the metadata 'authorization: Bearer <key>'"
        )
        forbidden = refused(lambda: stub.RepositoryModelUnload(unload, metadata=bearer(infer), timeout=10))
        assert forbidden.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert "key 'desk' has role infer; this needs an admin key." in forbidden.details()  # type: ignore[attr-defined]
        stub.RepositoryModelUnload(unload, metadata=(("x-api-key", admin),), timeout=30)

        # where no key is needed a wrong one is no error (OpenAI-style clients send placeholders); where
        # one is needed, it is; and never on the health checks
        wrong = bearer("lanai_0123456789_" + "x" * 43)
        assert stub.ModelInfer(tiny_infer(), metadata=wrong, timeout=30).outputs
        invalid = refused(lambda: stub.RepositoryModelUnload(unload, metadata=wrong, timeout=10))
        assert invalid.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert "the API key is not valid" in invalid.details()  # type: ignore[attr-defined]
        assert stub.ServerLive(pb.ServerLiveRequest(), metadata=wrong, timeout=10).live
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), metadata=wrong, timeout=10)
        assert check.status == health_pb2.HealthCheckResponse.SERVING

    with triton.InferenceServerClient(lan.address) as client:
        with pytest.raises(InferenceServerException) as caught:
            client.load_model("tiny-fixed", headers={"authorization": f"Bearer {infer}"})
        assert status(caught.value) == "PERMISSION_DENIED"
        assert not client.is_model_ready("tiny-fixed")
        client.load_model("tiny-fixed", headers={"authorization": f"Bearer {admin}"})
        assert client.is_model_ready("tiny-fixed")

    metrics = httpx.get(lan.url + "/metrics", headers={"authorization": f"Bearer {admin}"}, timeout=10).text
    for code, method in (("PERMISSION_DENIED", "RepositoryModelLoad"), ("UNAUTHENTICATED", "RepositoryModelUnload")):
        assert f'lanai_grpc_requests_total{{code="{code}",method="{SERVICE}/{method}"}}' in metrics
    assert 'lanai_auth_refusals_total{reason="forbidden"}' in metrics


def test_the_key_is_checked_before_the_request_is_parsed(lan: Keyed) -> None:
    with grpc.insecure_channel(lan.address) as channel:
        unload = channel.unary_unary(f"/{SERVICE}/RepositoryModelUnload")
        anonymous = refused(lambda: unload(b"\xff\xff\xff", timeout=10))
        assert anonymous.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        metadata = channel.unary_unary(f"/{SERVICE}/ModelMetadata")
        garbled = refused(lambda: metadata(b"\xff\xff\xff", timeout=10))
        assert garbled.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "the request message is not valid" in garbled.details()  # type: ignore[attr-defined]


def test_a_key_limited_to_a_model_may_not_use_another(lan: Keyed) -> None:
    headers = {"x-api-key": lan.keys["tiny-only"]}
    pixels = np.zeros((1, 3, 8, 8), np.float32)
    with triton.InferenceServerClient(lan.address) as client:
        assert client.infer("tiny", [infer_input(pixels)], headers=headers).as_numpy("logits").shape == (1, 5)
        assert client.get_model_metadata("tiny", headers=headers).name == "tiny"
        assert client.is_model_ready("tiny", headers=headers)
        for call in (
            lambda: client.infer("tiny-fixed", [infer_input(pixels)], headers=headers),
            lambda: client.get_model_metadata("tiny-fixed", headers=headers),
            lambda: client.is_model_ready("tiny-fixed", headers=headers),
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert status(caught.value) == "PERMISSION_DENIED"
            assert "key 'tiny-only' may not use model 'tiny-fixed'. Hint: it may use: tiny." in caught.value.message()


def test_a_revoked_key_is_refused_without_a_restart_and_an_expired_one_at_once(required: Keyed) -> None:
    lan = required  # where keys are required, so that a key that is no longer valid is refused
    key, expired = bearer(lan.keys["laptop"]), bearer(lan.keys["old"])
    with grpc.insecure_channel(lan.address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ModelInfer(tiny_infer(), metadata=key, timeout=30).outputs
        late = refused(lambda: stub.ModelInfer(tiny_infer(), metadata=expired, timeout=10))
        assert late.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert "not valid: unknown, revoked or expired" in late.details()  # type: ignore[attr-defined]

        lan.ring.revoke("laptop")
        deadline = time.monotonic() + 5  # the server re-reads its keys within half a second
        while True:
            try:
                stub.ModelInfer(tiny_infer(), metadata=key, timeout=10)
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
                break
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.02)


def test_a_key_over_its_rate_is_resource_exhausted_with_retry_info(lan: Keyed) -> None:
    key = bearer(lan.keys["slow"])
    request = pb.ModelMetadataRequest(name="tiny")
    with grpc.insecure_channel(lan.address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ModelMetadata(request, metadata=key, timeout=10).name == "tiny"
        limited = refused(lambda: stub.ModelMetadata(request, metadata=key, timeout=10))
    assert limited.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "key 'slow' is limited to 1 requests per second" in limited.details()  # type: ignore[attr-defined]
    trailers = dict(limited.trailing_metadata())  # type: ignore[attr-defined]
    assert trailers["retry-after"] == "1"
    assert 0 < retry_delay(trailers["grpc-status-details-bin"]) <= 1


def test_required_mode_asks_every_call_but_the_health_checks_for_a_key(required: Keyed) -> None:
    headers = {"authorization": f"Bearer {required.keys['desk']}"}
    pixels = np.zeros((1, 3, 8, 8), np.float32)
    with triton.InferenceServerClient(required.address) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert health(required.address, "tiny") == health_pb2.HealthCheckResponse.SERVING
        for call in (
            lambda: client.infer("tiny", [infer_input(pixels)]),
            lambda: client.get_server_metadata(),
            lambda: client.get_model_repository_index(),
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert status(caught.value) == "UNAUTHENTICATED"
            assert caught.value.message().startswith("this server needs an API key. Hint: send the metadata")
        assert client.infer("tiny", [infer_input(pixels)], headers=headers).as_numpy("logits").shape == (1, 5)
        assert client.get_server_metadata(headers=headers).name == "lanai"
    with grpc.insecure_channel(required.address) as channel:
        anonymous = refused(lambda: ProtoReflectionDescriptorDatabase(channel).get_services())
        assert anonymous.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


# -- the door alone: IPv6, a port in use, a drained stop ----------------------------------------------------


def test_the_door_binds_ipv6_refuses_a_busy_port_and_ends_watches_when_it_stops(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    store = Store(tmp_path)
    store.add(model_files["tiny"], name="tiny", task="classify", preprocess=TINY_PREPROCESS, inspect=inspector("onnx"))
    settings = Settings(home=tmp_path)

    async def scenario() -> None:
        plane = DataPlane(store, settings)
        await plane.start()
        door, busy = GrpcDoor(plane, settings), socket.create_server(("127.0.0.1", 0))
        try:
            with pytest.raises(ConfigError, match="cannot listen for gRPC on 127.0.0.1:"):
                await GrpcDoor(plane, settings).start("127.0.0.1", busy.getsockname()[1])
            host = "::1" if socket.has_ipv6 and _ipv6_loopback() else "127.0.0.1"
            port = await door.start(host, 0)
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            async with grpc.aio.insecure_channel(target) as channel:
                stub = GRPCInferenceServiceStub(channel)
                assert (await stub.ServerLive(pb.ServerLiveRequest(), timeout=10)).live
                # this machine may administer without a key (admin_loopback), over IPv6 too: admitted, the
                # call fails only because there is no such model
                with pytest.raises(grpc.aio.AioRpcError) as unknown:
                    await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="nope"), timeout=10)
                assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
                watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
                assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
                loop = asyncio.get_running_loop()
                started = loop.time()
                stopping = asyncio.create_task(door.stop(grace=20))
                assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
                await stopping
                assert loop.time() - started < 5  # the watch ended; stop did not wait out the grace period
        finally:
            busy.close()
            await door.stop(0)
            await plane.shutdown()

    asyncio.run(scenario())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_the_door_speaks_tls_when_the_settings_name_a_certificate(tmp_path: Path, model_files: dict[str, Path]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    store = Store(tmp_path / "store")
    store.add(model_files["tiny"], name="tiny", task="classify", preprocess=TINY_PREPROCESS, inspect=inspector("onnx"))
    settings = Settings(home=store.root, tls_certfile=cert, tls_keyfile=key)

    async def scenario() -> None:
        plane = DataPlane(store, settings)
        await plane.start()
        door = GrpcDoor(plane, settings)
        try:
            address = f"127.0.0.1:{await door.start('127.0.0.1', 0)}"

            def call() -> None:
                with triton.InferenceServerClient(address, ssl=True, root_certificates=str(cert)) as client:
                    assert client.get_model_metadata("tiny").name == "tiny"
                with triton.InferenceServerClient(address) as plain, pytest.raises(InferenceServerException):
                    plain.is_server_live(client_timeout=5)

            await asyncio.to_thread(call)
        finally:
            await door.stop(0)
            await plane.shutdown()

    asyncio.run(scenario())


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_a_client_outside_the_served_networks_is_permission_denied(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    for served in keyed_server(tmp_path, model_files, allowed_networks=("192.168.7.0/24",)):
        with grpc.insecure_channel(served.address) as channel:
            denied = refused(lambda: GRPCInferenceServiceStub(channel).ModelInfer(tiny_infer(), timeout=10))
            assert denied.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
            assert "127.0.0.1 is not on a network this box serves" in denied.details()  # type: ignore[attr-defined]
            health = refused(
                lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            )
            assert health.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_a_drained_box_is_not_serving_to_grpc_health_and_back_after(served: Served) -> None:
    """gRPC load balancers (and Kubernetes' gRPC probes) read the server's health: it follows readiness."""
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert httpx.post(f"{served.url}/v1/admin/drain").status_code == 200  # lanai drain, over HTTP
    try:
        assert health(served.address, "") == not_serving and health(served.address, SERVICE) == not_serving
        assert health(served.address, "tiny") == serving  # its models still answer what they are sent
    finally:
        httpx.delete(f"{served.url}/v1/admin/drain")
    assert health(served.address, "") == serving
