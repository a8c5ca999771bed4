from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import InspectFn, MakeModel

from lanai.errors import BadInput, InvalidName, StoreError
from lanai.store import Store, validate_name


@pytest.mark.parametrize("name", ["a", "0", "mobilenet-v3", "resnet50.int8", "x_y", "a..b", "a" * 64, "9-lives"])
def test_good_names_pass(name: str) -> None:
    assert validate_name(name) == name


BAD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "a\\b",
    "/abs",
    "A B",
    "Model",
    "-x",
    ".hidden",
    "_x",
    "a" * 65,
    "a\n",
    "a b",
    "café",
    "a:b",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_with_a_hint(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(name)
    assert info.value.hint
    assert isinstance(info.value, StoreError) and isinstance(info.value, BadInput)


def test_uppercase_name_hint_suggests_the_lowercase_one() -> None:
    with pytest.raises(InvalidName, match="try 'mobilenet'"):
        validate_name("MobileNet")


def test_non_string_name_is_refused() -> None:
    with pytest.raises(InvalidName, match="must be a string"):
        validate_name(None)


@pytest.mark.parametrize("name", ["../escape", "..", "a/b"])
def test_store_refuses_bad_names_before_touching_any_path(
    tmp_path: Path, make_model: MakeModel, inspect: InspectFn, name: str
) -> None:
    root = tmp_path / "store"
    store = Store(root)
    with pytest.raises(InvalidName):
        store.add(make_model(), name=name, task="classify", inspect=inspect)
    for call in (store.versions, store.active, store.manifest, store.rollback, store.remove):
        with pytest.raises(InvalidName):
            call(name)
    with pytest.raises(InvalidName):
        store.activate(name, 1)
    assert not root.exists()
    assert not (tmp_path / "escape").exists()
