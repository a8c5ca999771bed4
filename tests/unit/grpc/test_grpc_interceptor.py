"""Which level each gRPC method needs (deny by default), and how a call's key and address are read."""

from __future__ import annotations

import pytest

from lanai.grpc.interceptor import INFER_METHODS, PUBLIC_METHODS, access_of, peer_address, token_of
from lanai.security.guard import Access

SERVICE = "/inference.GRPCInferenceService/"


@pytest.mark.parametrize(
    ("method", "access"),
    [
        ("/grpc.health.v1.Health/Check", Access.PUBLIC),
        ("/grpc.health.v1.Health/Watch", Access.PUBLIC),
        (SERVICE + "ServerLive", Access.PUBLIC),
        (SERVICE + "ServerReady", Access.PUBLIC),
        (SERVICE + "ServerMetadata", Access.INFER),
        (SERVICE + "ModelMetadata", Access.INFER),
        (SERVICE + "ModelReady", Access.INFER),
        (SERVICE + "ModelInfer", Access.INFER),
        (SERVICE + "RepositoryIndex", Access.INFER),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Access.INFER),
        (SERVICE + "RepositoryModelLoad", Access.ADMIN),
        (SERVICE + "RepositoryModelUnload", Access.ADMIN),
        (SERVICE + "ModelStreamInfer", Access.ADMIN),  # Triton has it, lanai not (yet): not listed, admin
        (SERVICE + "modelinfer", Access.ADMIN),  # names are exact
        ("/some.Other/Method", Access.ADMIN),
        ("", Access.ADMIN),
    ],
)
def test_methods_not_listed_need_an_admin(method: str, access: Access) -> None:
    assert access_of(method) is access


def test_every_listed_method_is_one_the_door_serves() -> None:
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    from lanai.grpc import inference_pb2

    services = (
        inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    )
    served = {f"/{service.full_name}/{method.name}" for service in services for method in service.methods}
    # reflection's v1 is listed for when grpcio-reflection serves it too
    assert (PUBLIC_METHODS | INFER_METHODS) - served == {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("x-api-key", " abc"),), "abc"),
        ((("user-agent", "grpc-python"), ("x-api-key", "abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), ""),
        ((), None),
        (None, None),
    ],
)
def test_the_key_comes_from_the_metadata(metadata: tuple[tuple[str, str], ...] | None, token: str | None) -> None:
    assert token_of(metadata) == token


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv4:192.168.1.20:40000", "192.168.1.20"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:%5B::1%5D:5555", "::1"),  # grpc URL-encodes the brackets
        ("ipv6:%5Bfe80::1%25eth0%5D:5555", "fe80::1"),
        ("ipv6:[::ffff:127.0.0.1]:5555", "127.0.0.1"),  # IPv4-mapped: the IPv4 address
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("unix:/run/lanai.sock", None),
        ("ipv4:not-an-address:1", None),
        ("", None),
        (None, None),
    ],
)
def test_the_address_comes_from_the_peer(peer: str | None, address: str | None) -> None:
    assert peer_address(peer) == address
