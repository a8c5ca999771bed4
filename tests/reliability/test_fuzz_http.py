"""Property-based fuzzing of the real server over real sockets (issue 12): schemathesis over lanai's own
OpenAPI document (every operation, the OpenAI-compatible ones on a real GGUF, the pipelines), structure-aware
hypothesis fuzzers for the binary tensor extension and multipart forms, hypothesis over gRPC ModelInfer, and the
server's memory across it all. Never a 5xx, an INTERNAL/UNKNOWN, a hang or a dead server.

CI runs few, derandomized cases; ``LANAI_FUZZ_EXAMPLES=5000 pytest tests/reliability/test_fuzz_http.py -s`` runs
long (random seed, printed; repeat one with ``LANAI_FUZZ_SEED``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
import schemathesis
from fuzzing import (
    ANSWER_WITHIN,
    LONG_EXAMPLES,
    REQUEST_TIMEOUT,
    SEED,
    TALLY,
    Form,
    OipBody,
    assert_alive,
    assert_sane,
    fuzz_settings,
    multipart_forms,
    oip_bodies,
    valid_form,
)
from hypothesis import example, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from lanai.bundled import inspector
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.http.openapi import openapi_document
from lanai.types import BatchingConfig

from support import ServerThread, encode, make_store, write_tiny_gguf

pytest.importorskip("llama_cpp", reason="the llm extra is not installed: pip install -e '.[test]'")

MODELS = ["tiny", "tiny-fixed", "efficientnet-lite0", "gpt", "chatty", "nope"]
PIPELINES = {
    "sort": '[[step]]\nname = "sort"\nmodel = "tiny"\ntask = "classify"\ntop_k = 2\n',
    "talk": '[[step]]\nname = "sort"\nmodel = "tiny"\ntask = "classify"\n\n[[step]]\nname = "say"\nmodel = "chatty"\n'
    'task = "chat"\nprompt = "a {{sort.label}}"\nmax_tokens = 4\ntimeout_s = 5\n',
}
DESTRUCTIVE = [
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "Drain",
    "Undrain",
    "OpenPairing",
    "ClosePairing",
    "StartPairing",
    "ConfirmPairing",
    "AdminActivateModel",
    "AdminRollbackModel",
    "AdminCreateKey",
    "AdminRevokeKey",
    "AdminRevokeDevice",
]
STATEFUL_SCENARIOS, STATEFUL_STEPS = 20, 8
"""CI's stateful run: scenarios of up to this many linked calls (LANAI_FUZZ_EXAMPLES scenarios on demand)."""
CREDENTIALS = ("Authorization", "X-API-Key")
if LONG_EXAMPLES:
    print(f"\nfuzzing with LANAI_FUZZ_EXAMPLES={LONG_EXAMPLES} LANAI_FUZZ_SEED={SEED}")


class Fuzzed:
    def __init__(self, url: str, grpc_address: str, root: Path) -> None:
        self.url, self.grpc_address, self.root = url, grpc_address, root
        self.client = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT)


def _serve(root: Path, model_files: dict[str, Path]) -> Iterator[Fuzzed]:
    """A server of its own (fuzzing may change its state): the tiny classifiers, the bundled model, a tiny
    random GGUF as completion ("gpt") and chat ("chatty") model, and two pipelines."""
    store = make_store(root / "store", model_files)
    gguf = write_tiny_gguf(root / "tiny.gguf")
    for name, task in (("gpt", "completion"), ("chatty", "chat")):
        store.add(gguf, name=name, task=task, backend="llamacpp", backend_options={"n_ctx": 128, "parallel": 2},
                  batching=BatchingConfig(max_queue_size=16), inspect=inspector("llamacpp"))  # fmt: skip
    folder = store.root / "pipelines"
    folder.mkdir(exist_ok=True)
    for name, text in PIPELINES.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    settings = Settings(home=store.root, max_body_bytes=2 * 2**20, max_image_pixels=4_000_000, intra_op_threads=1)
    thread = ServerThread(DataPlane(store, settings), settings)
    with thread as url:
        served = Fuzzed(url, thread.grpc_address, store.root)
        yield served
        served.client.close()


@pytest.fixture(scope="module")
def rss() -> dict[str, int]:
    return {}


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path], rss: dict[str, int]
) -> Iterator[Fuzzed]:
    for served in _serve(tmp_path_factory.mktemp("fuzz"), model_files):
        warm = served.client.post("/v1/completions", json={"model": "gpt", "prompt": "ab", "max_tokens": 2})
        assert warm.status_code == 200, warm.text
        rss["before"] = psutil.Process(os.getpid()).memory_info().rss
        yield served
    print("\n" + TALLY.report())


@pytest.fixture(scope="module")
def png() -> bytes:
    import numpy as np

    return encode(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8), "PNG")


# -- 1. schemathesis over /openapi.json -------------------------------------------------------------------------


def _with_known_names(schema: Any) -> Any:
    """Half the path parameters and JSON bodies name a model or pipeline the server has."""

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        choices = {
            "model": st.sampled_from(MODELS),
            "pipeline": st.sampled_from([*PIPELINES, "nope"]),
            "version": st.sampled_from(["1", "2", "x"]),
        }
        keys = [k for k in path_parameters or {} if k in choices]
        if not keys:
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters),
            st.fixed_dictionaries({k: choices[k] for k in keys}).map(lambda known: {**path_parameters, **known}),
        )

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        if isinstance(body, dict) and "model" in body:
            return st.one_of(st.just(body), st.sampled_from(MODELS).map(lambda m: {**body, "model": m}))
        return st.just(body)

    return schema


@pytest.fixture(scope="module")
def api_schema(fuzzed: Fuzzed) -> Any:
    return _with_known_names(schemathesis.openapi.from_url(fuzzed.url + "/openapi.json"))


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[Fuzzed]:
    yield from _serve(tmp_path_factory.mktemp("throwaway"), model_files)


@pytest.fixture(scope="module")
def throwaway_schema(throwaway: Fuzzed) -> Any:
    return _with_known_names(schemathesis.openapi.from_url(throwaway.url + "/openapi.json"))


def _maybe_seed(test: Any) -> Any:
    return seed(SEED)(test) if LONG_EXAMPLES else test


@schemathesis.check
def answers_in_time(ctx: Any, response: Any, case: Any) -> bool | None:
    assert response.elapsed < ANSWER_WITHIN, f"{case.operation.label} took {response.elapsed:.1f} s"
    return None


def _fuzz_operation(schema: Any, operation_id: str, url: str, examples: int) -> None:
    """Valid and invalid cases for one operation, generated from the served document: never a 5xx, always in
    time, and the server is alive after each."""
    operation = schema.find_operation_by_id(operation_id)
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @_maybe_seed
    @fuzz_settings(examples)
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(timeout=REQUEST_TIMEOUT)
        TALLY.add("openapi " + operation_id, response.status_code)
        case.validate_response(response, checks=[not_a_server_error, answers_in_time])
        assert_alive(url)

    run()


OPERATIONS = sorted(
    op["operationId"] for ops in openapi_document()["paths"].values() for op in ops.values() if "operationId" in op
)


def test_the_served_document_has_every_operation(fuzzed: Fuzzed) -> None:
    paths = fuzzed.client.get("/openapi.json").json()["paths"]
    served = [op["operationId"] for ops in paths.values() for op in ops.values() if "operationId" in op]
    assert sorted(served) == OPERATIONS


@pytest.mark.parametrize("operation_id", [op for op in OPERATIONS if op not in DESTRUCTIVE])
def test_every_operation_survives_fuzzing(api_schema: Any, fuzzed: Fuzzed, operation_id: str) -> None:
    _fuzz_operation(api_schema, operation_id, fuzzed.url, 12)


@pytest.mark.parametrize("operation_id", DESTRUCTIVE)
def test_destructive_operations_on_a_throwaway_server(
    throwaway_schema: Any, throwaway: Fuzzed, operation_id: str
) -> None:
    _fuzz_operation(throwaway_schema, operation_id, throwaway.url, 8)


LINKED = sorted(
    {op["operationId"] for ops in openapi_document()["paths"].values() for op in ops.values()
     for response in op["responses"].values() if response.get("links")}
    | {link["operationId"] for ops in openapi_document()["paths"].values() for op in ops.values()
       for response in op["responses"].values() for link in response.get("links", {}).values()}
)  # fmt: skip
"""The operations the document's links join: the source of a link, or its target."""


def test_the_stateful_run_follows_the_links_it_should() -> None:
    assert {"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload", "ModelMetadata", "ListModels",
            "OpenPairing", "ClosePairing"} <= set(LINKED)  # fmt: skip
    assert not {"Drain", "Undrain"} & set(LINKED)  # a drained server answers its readiness checks with 503


def _reset(served: Fuzzed) -> None:
    """Every model in the store loaded again, and no pairing open."""
    served.client.delete("/v1/admin/pairing")
    for entry in served.client.post("/v2/repository/index").json():
        if entry["state"] != "READY":
            loaded = served.client.post(f"/v2/repository/models/{entry['name']}/load")
            assert loaded.status_code == 200, loaded.text


def test_linked_calls_in_sequence_never_break_the_server(throwaway: Fuzzed) -> None:
    """Schemathesis's stateful run over the document's links on the throwaway server: an index's first model
    loaded, unloaded, loaded again, its metadata, readiness and versions, inference on it; the loaded models'
    metadata; an open pairing looked at and closed. Each step valid or not; never a 5xx, always in time, and
    the server alive after each step."""
    schema = schemathesis.openapi.from_url(throwaway.url + "/openapi.json").include(operation_id=LINKED)
    schema.config.phases.stateful.inference.algorithms = []  # the document's links only, none guessed

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            TALLY.add("stateful " + str(case.operation.definition.raw.get("operationId")), response.status_code)
            case.validate_response(response, checks=[not_a_server_error, answers_in_time])
            assert_alive(throwaway.url)

        def before_call(self, case: Any) -> None:
            for name in CREDENTIALS:  # the admin calls from the box need none; a made-up key is only a 401
                (case.headers or {}).pop(name, None)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"timeout": REQUEST_TIMEOUT}

        def teardown(self) -> None:
            _reset(throwaway)  # each scenario starts from the same state, as hypothesis's replays expect

    _maybe_seed(Workflow)
    Workflow.run(settings=settings(fuzz_settings(STATEFUL_SCENARIOS), stateful_step_count=STATEFUL_STEPS))
    assert_alive(throwaway.url)


# -- 2. structure-aware fuzzers: the binary tensor extension and multipart forms ---------------------------------


def _post_oip(fuzzed: Fuzzed, model: str, case: OipBody) -> None:
    headers = {key: value.encode("latin-1") for key, value in case.headers.items()}  # as the bytes go on the wire
    response = fuzzed.client.post(f"/v2/models/{model}/infer", content=case.body, headers=headers)
    assert_sane(f"oip {model}", response, valid=case.valid and model == "tiny")
    assert_alive(fuzzed.url)


def _lie(doc: dict[str, Any], binary: bytes = b"", length: str | None = None) -> OipBody:
    header = json.dumps(doc).encode()
    return OipBody(header + binary, {"Inference-Header-Content-Length": length or str(len(header))}, False)


def _tensor(shape: list[int], datatype: str = "FP32", **entry: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": datatype, "shape": shape, **entry}]}


LIES = {
    "header longer than the body": _lie({"inputs": []}, length="99"),
    "negative header length": _lie({"inputs": []}, length="-4"),
    "superscript digit header length": _lie({"inputs": []}, length="\u00b2"),
    "huge shape": _lie(_tensor([2**40, 3, 8, 8], parameters={"binary_data_size": 0})),
    "shape past int64": _lie(_tensor([2**64, 3, 8, 8], parameters={"binary_data_size": 0})),
    "empty batch": _lie(_tensor([0, 3, 8, 8], parameters={"binary_data_size": 0})),
    "binary size past the end": _lie(_tensor([1, 3, 8, 8], parameters={"binary_data_size": 800}), b"\0" * 768),
    "BYTES length prefix lies": _lie(
        _tensor([1], "BYTES", parameters={"binary_data_size": 8}), struct.pack("<I", 2**31) + b"abcd"
    ),  # fmt: skip
    "FP32 data past its range": _lie(_tensor([1, 1], data=[1e300])),  # once a 500 (numpy's overflow warning)
    "FP16 data past its range": _lie(_tensor([1], "FP16", data=[1e10])),
    "BYTES for an FP32 input": _lie(_tensor([1, 3, 8, 8], "BYTES", data=["a"] * 192)),
}


@pytest.mark.parametrize("case", LIES.values(), ids=LIES.keys())
def test_known_lies_are_refused(fuzzed: Fuzzed, case: OipBody) -> None:
    _post_oip(fuzzed, "tiny", case)


@_maybe_seed
@fuzz_settings(150)
@given(case=oip_bodies(), model=st.sampled_from(["tiny", "tiny-fixed", "tiny", "gpt"]))
def test_binary_tensor_bodies_never_break_the_server(fuzzed: Fuzzed, case: OipBody, model: str) -> None:
    _post_oip(fuzzed, model, case)


FORM_TARGETS = ["/v1/models/tiny/classify", "/v1/vision/detection", "/v1/infer", "/v1/pipelines/sort"]


@_maybe_seed
@fuzz_settings(120)
@given(data=st.data(), target=st.sampled_from(FORM_TARGETS))
def test_multipart_bodies_never_break_the_server(fuzzed: Fuzzed, png: bytes, data: st.DataObject, target: str) -> None:
    form: Form = data.draw(multipart_forms(png))
    response = fuzzed.client.post(target, content=form.body, headers={"Content-Type": form.content_type})
    assert_sane("multipart " + target, response)
    assert_alive(fuzzed.url)


@pytest.mark.parametrize("target", ["/v1/models/tiny/classify", "/v1/infer", "/v1/pipelines/sort"])
def test_a_valid_form_is_answered(fuzzed: Fuzzed, png: bytes, target: str) -> None:
    form = valid_form(png)
    response = fuzzed.client.post(target, content=form.body, headers={"Content-Type": form.content_type})
    assert_sane("multipart " + target, response, valid=True)


NUMBERS = st.one_of(
    st.integers(-5, 20).map(str),
    st.sampled_from(["\u00b2", "-\u00b2", "--5", "\u0663", "1e3", "0x10", "", " ", "nan", "inf", "1_0", "+3"]),
    st.just(str(2**70)),
    st.text(max_size=6),
)


@_maybe_seed
@fuzz_settings(60)
@given(name=st.sampled_from(["top_k", "min_score", "threshold", "x"]), value=NUMBERS)
@example(name="top_k", value="\u00b2")  # once a 500: "²".isdigit() but int("²") fails
@example(name="top_k", value="--5")  # once a 500
def test_task_query_parameters_never_break_the_server(fuzzed: Fuzzed, png: bytes, name: str, value: str) -> None:
    response = fuzzed.client.post(
        "/v1/models/tiny/classify", params={name: value}, content=png, headers={"Content-Type": "image/png"}
    )
    assert_sane("query /v1/models/tiny/classify", response)


def test_detect_classes_with_a_superscript_digit_is_bad_input() -> None:
    from lanai.errors import BadInput
    from lanai.tasks.detect import _allowed

    assert list(_allowed("1, cat", ["dog", "cat"], 0)) == [1, 1]  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="no class"):
        _allowed("\u00b2", ["dog", "cat"], 0)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
OPENAI_FIELDS = {
    "/v1/chat/completions": ["messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
                             "seed", "stream", "n", "response_format", "tools", "logprobs", "stream_options"],
    "/v1/completions": ["prompt", "max_tokens", "temperature", "stop", "seed", "stream", "echo", "logprobs", "n"],
    "/v1/embeddings": ["input", "encoding_format", "dimensions"],
}  # fmt: skip
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]), "content": st.text(max_size=8) | JSON}
    ),
    max_size=3,
)


@st.composite
def openai_bodies(draw: st.DrawFn, path: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(st.sampled_from(["gpt", "chatty", "tiny", "nope"]))}
    for name in draw(st.lists(st.sampled_from(OPENAI_FIELDS[path]), max_size=5, unique=True)):
        body[name] = draw(MESSAGES if name == "messages" else JSON)
    if path == "/v1/completions" and draw(st.booleans()):
        body["prompt"] = draw(st.text(max_size=20))
    if path == "/v1/chat/completions" and draw(st.booleans()):
        body["messages"] = [{"role": "user", "content": draw(st.text(max_size=20))}]
    if "max_tokens" not in body or draw(st.booleans()):
        body["max_tokens"] = draw(st.integers(1, 4))  # keeps the generation short: the server's time is the limit
    return body


@_maybe_seed
@fuzz_settings(60)
@given(data=st.data(), path=st.sampled_from(list(OPENAI_FIELDS)))
def test_openai_bodies_never_break_the_server(fuzzed: Fuzzed, data: st.DataObject, path: str) -> None:
    body = data.draw(openai_bodies(path))
    content = json.dumps(body).encode()  # NaN and Infinity as Python writes them: JSON parsers may take them
    response = fuzzed.client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert_sane("openai " + path, response)
    assert_alive(fuzzed.url)


# -- 3. gRPC ModelInfer -------------------------------------------------------------------------------------------

BAD_INPUT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
}
CONTENTS = ["bool_contents", "int_contents", "int64_contents", "uint_contents", "fp32_contents", "fp64_contents"]


@st.composite
def infer_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=draw(st.sampled_from(["tiny", "tiny-fixed", "gpt", "nope", ""])),
        model_version=draw(st.sampled_from(["", "", "1", "9"])),
    )
    raw_mode = draw(st.booleans())
    for _ in range(draw(st.integers(0, 2))):
        shape = draw(st.one_of(st.just([1, 3, 8, 8]), st.lists(st.integers(-(2**62), 2**62) | st.integers(-2, 9),
                                                                 max_size=5)))  # fmt: skip
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["input", "x", ""])),
            datatype=draw(st.sampled_from(["FP32", "FP16", "INT64", "BYTES", "BOOL", "UINT8", "fp32", "nope"])),
            shape=shape,
        )
        if raw_mode:
            size = draw(st.sampled_from([768, 767, 0, 4, 3072]))
            request.raw_input_contents.append(draw(st.binary(min_size=size, max_size=size)))
        else:
            which = draw(st.sampled_from([*CONTENTS, "bytes_contents", None]))
            count = draw(st.sampled_from([192, 191, 0, 1]))
            if which == "fp32_contents" or which == "fp64_contents":
                getattr(tensor.contents, which).extend([0.5] * count)
            elif which == "bool_contents":
                tensor.contents.bool_contents.extend([True] * count)
            elif which == "bytes_contents":
                tensor.contents.bytes_contents.extend([b"ab"] * min(count, 4))
            elif which is not None:
                getattr(tensor.contents, which).extend([7] * count)
    if raw_mode and draw(st.booleans()):
        request.raw_input_contents.append(b"\x00" * 8)  # one more than there are inputs
    for name in draw(st.lists(st.sampled_from(["logits", "nope"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@pytest.fixture(scope="module")
def stub(fuzzed: Fuzzed) -> Iterator[GRPCInferenceServiceStub]:
    with grpc.insecure_channel(fuzzed.grpc_address) as channel:
        yield GRPCInferenceServiceStub(channel)


def _grpc_infer(stub: GRPCInferenceServiceStub, request: pb.ModelInferRequest) -> str:
    try:
        stub.ModelInfer(request, timeout=ANSWER_WITHIN)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        TALLY.add("grpc ModelInfer", code.name)
        assert code in BAD_INPUT_CODES, f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
        return str(code.name)
    TALLY.add("grpc ModelInfer", "OK")
    return "OK"


def _valid_grpc_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="tiny")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 3, 8, 8])
    request.raw_input_contents.append(b"\x00" * 768)
    return request


@_maybe_seed
@fuzz_settings(150)
@given(request=infer_requests())
@example(request=_valid_grpc_request())
def test_grpc_model_infer_refuses_bad_input_with_the_right_code(
    fuzzed: Fuzzed, stub: GRPCInferenceServiceStub, request: pb.ModelInferRequest
) -> None:
    _grpc_infer(stub, request)
    assert_alive(fuzzed.url)


def test_grpc_valid_request_is_answered(stub: GRPCInferenceServiceStub) -> None:
    assert _grpc_infer(stub, _valid_grpc_request()) == "OK"


# -- 4. memory stays bounded -------------------------------------------------------------------------------------

RSS_GROWTH_LIMIT = 512 * 2**20


def test_memory_stays_bounded(fuzzed: Fuzzed, rss: dict[str, int]) -> None:
    """Runs last in this module: the test process (which hosts the server) grew by less than the bound."""
    after = psutil.Process(os.getpid()).memory_info().rss
    growth = after - rss["before"]
    print(f"\nRSS before fuzzing {rss['before'] / 2**20:.0f} MiB, after {after / 2**20:.0f} MiB, "
          f"growth {growth / 2**20:+.0f} MiB")  # fmt: skip
    assert_alive(fuzzed.url)
    assert growth < RSS_GROWTH_LIMIT
