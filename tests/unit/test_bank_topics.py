"""Partition ownership: writers never share a partition, and a key keeps its partition."""

from __future__ import annotations

from targets.bank.topics import own_partition


def test_writers_own_disjoint_partitions() -> None:
    keys = [f"acct-{i}".encode() for i in range(500)]
    owned = {w: {own_partition(w, 3, 9, k) for k in keys} for w in range(3)}
    assert owned[0] | owned[1] | owned[2] <= set(range(9))
    assert not (owned[0] & owned[1] or owned[0] & owned[2] or owned[1] & owned[2])
    assert all(len(parts) == 3 for parts in owned.values())  # each writer spreads over its share


def test_a_key_always_maps_to_the_same_partition() -> None:
    assert {own_partition(1, 2, 6, b"acct-42") for _ in range(10)} == {own_partition(1, 2, 6, b"acct-42")}


def test_an_instance_without_key_writes_to_its_own_partition() -> None:
    assert [own_partition(i, 3, 3) for i in range(3)] == [0, 1, 2]
