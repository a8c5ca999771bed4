"""Artifact references as docker and oras write them, and the ones a user gets wrong."""

from __future__ import annotations

import pytest

from lanai.errors import BadInput
from lanai.fleet.reference import Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.local:5000/models/defects:stable", Reference("registry.local:5000", "models/defects", "stable")),
        ("127.0.0.1:5000/defects", Reference("127.0.0.1:5000", "defects")),
        (f"localhost/a/b/c@{DIGEST}", Reference("localhost", "a/b/c", None, DIGEST)),
        (f"ghcr.io/acme/models.v2:v1.0-rc_1@{DIGEST}", Reference("ghcr.io", "acme/models.v2", "v1.0-rc_1", DIGEST)),
        ("[::1]:5000/m:t", Reference("[::1]:5000", "m", "t")),
    ],
)
def test_references_parse_into_their_parts(text: str, expected: Reference) -> None:
    found = parse_reference(text)
    assert found == expected
    assert str(found) == text
    assert found.ref == (expected.digest or expected.tag or "latest")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models/defects:stable", "names no registry"),  # docker would guess Docker Hub; a LAN box does not
        ("defects", "names no registry"),
        ("registry.local:5000/Models/defects", "not a valid repository"),
        ("registry.local:5000/models/defects:bad tag", "not a valid tag"),
        ("registry.local:5000/models/defects@sha256:abc", "not a sha256 digest"),
        ("registry.local:5000/", "not a valid repository"),
    ],
)
def test_a_wrong_reference_says_which_part_and_how_to_write_it(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as caught:
        parse_reference(text)
    assert caught.value.hint
