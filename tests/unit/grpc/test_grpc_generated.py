"""The proto and the committed generated code: field for field what Triton's clients send and expect,
up to date with the proto, importable next to tritonclient, and without grpcio at package import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2 as triton_pb

from lanai.grpc import inference_pb2 as pb

PROTO = Path(__file__).resolve().parents[3] / "src" / "lanai" / "grpc" / "inference.proto"


def file_proto(descriptor: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)  # type: ignore[attr-defined]
    return proto


def shape(message: descriptor_pb2.DescriptorProto) -> dict:
    """Names, numbers, types, labels, oneofs and nested messages: everything the wire format depends on."""
    return {
        "fields": sorted(
            (f.name, f.number, f.type, f.label, f.type_name, f.oneof_index if f.HasField("oneof_index") else None)
            for f in message.field
        ),
        "nested": {n.name: shape(n) for n in message.nested_type},
        "oneofs": [o.name for o in message.oneof_decl],
        "map_entry": message.options.map_entry,
    }


def test_messages_match_tritons_field_for_field() -> None:
    ours = {m.name: m for m in file_proto(pb.DESCRIPTOR).message_type}
    theirs = {m.name: m for m in file_proto(triton_pb.DESCRIPTOR).message_type}
    assert len(ours) == 21
    for name, message in ours.items():
        assert shape(message) == shape(theirs[name]), name


def test_the_service_has_the_methods_clients_call() -> None:
    ours = file_proto(pb.DESCRIPTOR).service[0]
    theirs = {m.name: m for m in file_proto(triton_pb.DESCRIPTOR).service[0].method}
    assert ours.name == "GRPCInferenceService"
    assert [m.name for m in ours.method] == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
    ]  # fmt: skip
    for method in ours.method:
        other = theirs[method.name]
        assert (method.input_type, method.output_type) == (other.input_type, other.output_type)
        assert not method.client_streaming and not method.server_streaming


def test_the_generated_code_is_the_protos(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools compiles the proto")
    out = tmp_path / "descriptor.pb"
    args = ["protoc", f"-I{PROTO.parents[2]}", f"--descriptor_set_out={out}", str(PROTO)]
    assert protoc.main(args) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in compiled.message_type:
        without_json_names(message)  # a descriptor set spells them out; generated code leaves them implied
    assert compiled == file_proto(pb.DESCRIPTOR), "run: python scripts/build_grpc.py"


def without_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        without_json_names(nested)


def test_own_pool_lets_tritonclient_load_beside_it() -> None:
    code = (
        "import tritonclient.grpc, lanai.grpc.server, lanai.grpc.inference_pb2 as pb, grpc, grpc_health\n"
        "from google.protobuf import descriptor_pool\n"
        "assert pb.DESCRIPTOR.pool is pb.POOL and pb.POOL is not descriptor_pool.Default()\n"
        "assert 'site-packages' in grpc.__file__ or 'dist-packages' in grpc.__file__, grpc.__file__\n"
        "assert lanai.grpc.server.grpc is grpc\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_the_package_does_not_import_grpcio() -> None:
    code = "import sys, lanai.grpc\nassert lanai.grpc.available()\nassert 'grpc' not in sys.modules, 'imported'\n"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
