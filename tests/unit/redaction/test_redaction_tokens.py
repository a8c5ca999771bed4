"""BIO tags over word pieces → entities with character offsets, as a token-classification model's output
(the offsets and word ids are those a WordPiece tokenizer gives for the text below)."""

from __future__ import annotations

import numpy as np

from lanai.redaction.tokens import Entity, decode_bio, merge_entities

LABELS = ["O", "B-GIVEN_NAME", "I-GIVEN_NAME", "B-SURNAME", "I-SURNAME", "B-PHONE", "I-PHONE", "B-STREET_NAME",
          "I-STREET_NAME", "B-CITY", "I-CITY"]  # fmt: skip
TEXT = "Dear Clara Jansen, call +44 20 7946, Baker Street, London. Peter Olsen, Ann Lee"


def pieces(*spec: tuple[str, str, int]) -> tuple[np.ndarray, list[tuple[int, int]], list[int | None]]:
    """(piece text, tag, word id) in order → probabilities (0.9 on the tag), offsets, word ids."""
    probs, offsets, words, at = [], [(0, 0)], [None], 0
    probs.append(np.eye(len(LABELS))[0])
    for piece, tag, word in spec:
        start = TEXT.index(piece, at)
        at = start + len(piece)
        offsets.append((start, at))
        words.append(word)
        row = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
        row[LABELS.index(tag)] = 0.9
        probs.append(row)
    return np.array(probs), offsets, words


def test_a_word_s_first_piece_decides_and_i_tags_continue() -> None:
    probs, offsets, words = pieces(
        ("Dear", "O", 0), ("Clara", "B-GIVEN_NAME", 1), ("Jan", "B-SURNAME", 2), ("sen", "B-SURNAME", 2),
        (",", "O", 3), ("call", "O", 4), ("+", "B-PHONE", 5), ("44", "I-PHONE", 6), ("20", "I-PHONE", 7),
        ("79", "I-PHONE", 8), ("46", "O", 8),  # a later piece's tag does not count
    )  # fmt: skip
    entities = decode_bio(probs, offsets, words, LABELS)
    assert [(e.type, TEXT[e.start : e.end]) for e in entities] == [
        ("GIVEN_NAME", "Clara"), ("SURNAME", "Jansen"), ("PHONE", "+44 20 7946")
    ]  # fmt: skip
    assert all(abs(e.score - 0.9) < 1e-6 for e in entities)


def test_an_i_tag_without_an_open_entity_opens_one() -> None:
    probs, offsets, words = pieces(("Clara", "I-GIVEN_NAME", 0), ("Jansen", "I-SURNAME", 1))
    assert [e.type for e in decode_bio(probs, offsets, words, LABELS)] == ["GIVEN_NAME", "SURNAME"]


def test_parts_merge_into_people_and_addresses_but_two_people_stay_two() -> None:
    def at(kind: str, part: str) -> Entity:
        start = TEXT.index(part)
        return Entity(kind, start, start + len(part), 0.8)

    found = [at("GIVEN_NAME", "Clara"), at("SURNAME", "Jansen"), at("STREET_NAME", "Baker Street"),
             at("CITY", "London"), at("GIVEN_NAME", "Peter"), at("SURNAME", "Olsen"), at("GIVEN_NAME", "Ann"),
             at("SURNAME", "Lee")]  # fmt: skip
    people = {"GIVEN_NAME": "PERSON", "SURNAME": "PERSON", "STREET_NAME": "ADDRESS", "CITY": "ADDRESS"}
    merged = merge_entities(TEXT, found, people)
    assert [(e.type, TEXT[e.start : e.end]) for e in merged] == [
        ("PERSON", "Clara Jansen"), ("ADDRESS", "Baker Street, London"), ("PERSON", "Peter Olsen"),
        ("PERSON", "Ann Lee"),
    ]  # fmt: skip
    assert [e.type for e in merge_entities(TEXT, found[:2])] == ["GIVEN_NAME", "SURNAME"]  # no map: as found
