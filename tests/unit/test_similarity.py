"""The band math of near-duplicates (core.similarity) and what the stores derive from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.metadata_store_contract import make_record
from imgpipe.adapters.aws import dynamodb_store
from imgpipe.config import Settings, SimilarityOptions
from imgpipe.core import similarity
from imgpipe.core.similarity import (
    BANDS,
    MAX_DISTANCE,
    bands,
    hamming,
    match,
    neighbours,
    probes,
    ranked,
)

hashes = st.integers(min_value=0, max_value=2**64 - 1)


def hexed(value: int) -> str:
    return f"{value:016x}"


@st.composite
def within(draw: st.DrawFn, max_distance: int = MAX_DISTANCE) -> tuple[str, str, int]:
    """A hash, another one at most `max_distance` bits away, and that distance."""
    base = draw(hashes)
    bits = draw(st.lists(st.integers(0, 63), unique=True, min_size=0, max_size=max_distance))
    other = base
    for bit in bits:
        other ^= 1 << bit
    return hexed(base), hexed(other), len(bits)


@given(within())
def test_any_two_hashes_within_the_distance_share_a_probe(pair: tuple[str, str, int]) -> None:
    a, b, distance = pair
    lookups = set(probes(a, distance))

    assert hamming(a, b) == distance
    # b is indexed under its own bands; one of them is among a's lookups
    assert lookups & set(enumerate(bands(b)))


@given(within(BANDS - 1))
def test_within_bands_minus_one_an_exact_band_matches(pair: tuple[str, str, int]) -> None:
    a, b, distance = pair

    assert any(x == y for x, y in zip(bands(a), bands(b), strict=True))
    assert len(probes(a, distance)) == BANDS  # one exact lookup per band


@given(hashes, st.integers(0, MAX_DISTANCE))
def test_probe_counts(value: int, max_distance: int) -> None:
    found = probes(hexed(value), max_distance)

    assert len(found) == len(set(found)) == BANDS * (1 + 16 * (max_distance // BANDS))


def test_bands_are_the_hash_in_four_slices() -> None:
    assert bands("0123456789ABCDEF") == ("0123", "4567", "89ab", "cdef")


def test_neighbours_flip_up_to_radius_bits() -> None:
    assert neighbours("0000", 0) == ["0000"]
    one = neighbours("0000", 1)
    assert one[0] == "0000"
    assert sorted(one[1:]) == sorted(f"{1 << b:04x}" for b in range(16))
    assert len(neighbours("ffff", 2)) == 1 + 16 + 120


def test_a_distance_past_the_index_is_refused() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        probes("0" * 16, MAX_DISTANCE + 1)


def test_the_configured_distance_is_bounded_by_the_index() -> None:
    assert Settings().similarity.max_distance == 6
    assert SimilarityOptions(max_distance=MAX_DISTANCE).max_distance == MAX_DISTANCE
    with pytest.raises(ValueError, match="less than or equal"):
        SimilarityOptions(max_distance=MAX_DISTANCE + 1)


def test_nearest_filters_sorts_and_skips_bad_hashes() -> None:
    target = "0" * 16
    candidates = {"c": "0" * 15 + "3", "b": "0" * 15 + "1", "a": "0" * 15 + "1", "x": "zz"}

    hits = similarity.nearest(candidates, target, 1, 10)

    assert [(h.image_id, h.distance) for h in hits] == [("a", 1), ("b", 1)]


def test_match_and_rank() -> None:
    target = make_record("uploads/t.jpg", sha256="a" * 64, phash="0" * 16)
    copy = make_record(
        "uploads/c.jpg", uploaded_at="2026-01-05T00:00:00.000Z", sha256="a" * 64, phash="0" * 16
    )
    twin = make_record(
        "uploads/w.jpg", uploaded_at="2026-01-01T00:00:00.000Z", sha256="b" * 64, phash="0" * 16
    )
    near = make_record("uploads/n.jpg", sha256="c" * 64, phash="0" * 15 + "7")
    far = make_record("uploads/f.jpg", sha256="d" * 64, phash="f" * 16)
    unhashed_copy = make_record("uploads/u.jpg", sha256="a" * 64)

    assert match(target, target, 6) is None
    assert match(target, far, 6) is None
    found = [match(target, r, 6) for r in (near, twin, unhashed_copy, copy)]

    ordered = ranked([m for m in found if m is not None])

    assert [(m.record.key, m.distance, m.same_bytes) for m in ordered] == [
        ("uploads/u.jpg", 0, True),  # same bytes before an equal pHash, whatever the time,
        ("uploads/c.jpg", 0, True),  # then the earliest upload first
        ("uploads/w.jpg", 0, False),
        ("uploads/n.jpg", 3, False),
    ]


def test_dynamodb_items_carry_sparse_similarity_keys() -> None:
    bare = dynamodb_store.to_item(make_record("uploads/a.jpg"), 1)
    full = dynamodb_store.to_item(
        make_record("uploads/a.jpg", sha256="a" * 64, phash="0123456789ABCDEF"), 1
    )

    assert not set(bare) & {"sha256", "phash", *dynamodb_store.BAND_ATTRIBUTES}
    assert full["sha256"] == {"S": "a" * 64}
    assert full["phash"] == {"S": "0123456789abcdef"}
    assert [full[a]["S"] for a in dynamodb_store.BAND_ATTRIBUTES] == [
        "0123",
        "4567",
        "89ab",
        "cdef",
    ]
    assert "phb0" not in dynamodb_store.to_item(make_record("uploads/a.jpg", phash="bad"), 1)


def test_dynamodb_similarity_indexes_use_declared_keys() -> None:
    indexes = dynamodb_store.similarity_indexes()
    keys = {k["AttributeName"] for i in indexes for k in i["KeySchema"]}

    assert [i["IndexName"] for i in indexes] == ["bySha256", *dynamodb_store.BAND_INDEXES]
    assert keys == {*dynamodb_store.SIMILARITY_KEY_ATTRIBUTES, "gsi2sk"}
    for index in indexes:
        assert (
            dynamodb_store.INDEX_NAMES[index["IndexName"]]["#pk"]
            == (index["KeySchema"][0]["AttributeName"])
        )
