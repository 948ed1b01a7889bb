"""Topic and schema names per namespace, and partition ownership: writers never share a partition,
a key keeps its partition, an instance's outcome partitions are its own."""

from __future__ import annotations

import re

import pytest

from targets.bank.topics import (
    ALL_TOPICS,
    DLQ,
    EVENT_TOPICS,
    INPUT_TOPICS,
    OUTCOMES,
    VIREMENT_RECU,
    Names,
    namespace_from,
    own_partition,
    own_partitions,
    subject_for,
)


def test_the_empty_namespace_is_the_seeds_names() -> None:
    names = Names("")
    assert names.events == EVENT_TOPICS
    assert (names.inputs, names.outcomes) == (INPUT_TOPICS, OUTCOMES)
    assert (names.dlq, names.virement_recu) == (DLQ, VIREMENT_RECU)
    assert names.all == ALL_TOPICS
    assert names.all == (
        "bancaire.compte.ouvert",
        "bancaire.compte.ferme",
        "bancaire.depot.effectue",
        "bancaire.retrait.effectue",
        "bancaire.virement.emis",
        "bancaire.virement.recu",
        "system.dlq",
        "bancaire.outcomes",
    )
    assert (names.schema, names.group) == ("bancaire", "bancaire")
    assert names.subject_for("DepotEffectue") == subject_for("DepotEffectue") == "bancaire.depot.effectue-value"


def test_a_namespace_prefixes_every_topic_the_group_and_names_the_schema() -> None:
    names = Names("x")
    assert names.all == tuple(f"x.{t}" for t in ALL_TOPICS)
    assert names.events == {e: f"x.{t}" for e, t in EVENT_TOPICS.items()}
    assert names.inputs == tuple(f"x.{t}" for t in INPUT_TOPICS)
    assert (names.outcomes, names.dlq) == ("x.bancaire.outcomes", "x.system.dlq")
    assert names.virement_recu == "x.bancaire.virement.recu"
    assert (names.schema, names.group) == ("bancaire_x", "x.bancaire")
    assert names.subject_for("CompteOuvert") == "x.bancaire.compte.ouvert-value"


def test_two_namespaces_share_no_topic_and_no_schema() -> None:
    a, b = Names("run-1"), Names("run-2")
    assert not set(a.all) & set(b.all) and a.schema != b.schema


def test_a_hyphen_becomes_an_underscore_in_the_schema_so_it_needs_no_quoting() -> None:
    assert Names("20261202t0514-ab12").schema == "bancaire_20261202t0514_ab12"


@pytest.mark.parametrize("bad", ["X", "a_b", "a.b", "-a", "a-", "a b", "a" * 49, "é"])
def test_a_namespace_that_is_not_lowercase_letters_digits_and_hyphens_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        Names(bad)


@pytest.mark.parametrize(
    "run_name", ["20261202T051415Z-bank-smoke", "20261202T051415Z-bank-smoke-2", "Run Dir", "__", "r" * 80]
)
def test_a_namespace_made_of_a_run_name_is_valid_and_short(run_name: str) -> None:
    ns = namespace_from(run_name)
    assert len(ns) <= 24 and re.fullmatch(r"[a-z0-9-]+", ns)
    Names(ns)  # accepted


def test_run_names_that_differ_only_past_the_cut_get_different_namespaces() -> None:
    assert namespace_from("20261202T051415Z-bank-sustained") != namespace_from("20261202T051415Z-bank-sustained-2")


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


def test_instances_share_out_the_outcome_partitions_by_index_modulo_count() -> None:
    assert [own_partitions(i, 2, 6) for i in range(2)] == [[0, 2, 4], [1, 3, 5]]
    assert [own_partitions(i, 4, 6) for i in range(4)] == [[0, 4], [1, 5], [2], [3]]


def test_with_fewer_partitions_than_instances_an_instance_still_gets_one() -> None:
    assert [own_partitions(i, 3, 2) for i in range(3)] == [[0], [1], [0]]
