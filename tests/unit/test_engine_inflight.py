"""Ops awaiting a completion (harness/engine/inflight.py): a ring of slots indexed by op id // processes."""

from __future__ import annotations

import numpy as np
import pytest

from harness.engine.inflight import InFlight
from harness.protocol import Op


def op(op_id: int, intended_ns: int = 0) -> Op:
    return Op(op_id, "op", None, intended_ns, intended_ns)


def test_the_ring_is_a_power_of_two_of_at_least_1024_slots_covering_max_in_flight() -> None:
    assert (InFlight(5).mask, InFlight(1024).mask, InFlight(1025).mask, InFlight(5000).mask) == (
        1023, 1023, 2047, 8191)


def test_an_added_op_is_popped_by_its_id() -> None:
    ring = InFlight(100)
    first, second = op(3), op(4)
    ring.add(first)
    ring.add(second, task=None)
    assert (ring.live, len(ring)) == (2, 2)
    assert ring.pop(3) == (first, None)
    assert ring.live == 1


def test_an_op_keeps_the_task_that_carries_it() -> None:
    ring = InFlight(100)
    carrier = object()
    ring.add(op(9), carrier)  # type: ignore[arg-type]
    popped = ring.pop(9)
    assert popped is not None and popped[1] is carrier


def test_popping_an_id_not_in_flight_gives_nothing() -> None:
    ring = InFlight(100)
    ring.add(op(1))
    assert ring.pop(2) is None
    assert ring.pop(1) is not None
    assert ring.pop(1) is None, "an op pops once"
    assert ring.live == 0


def test_a_stale_id_of_the_same_slot_pops_nothing_and_leaves_the_live_op() -> None:
    ring = InFlight(100)  # 1024 slots: ids 5 and 1029 share a slot
    live = op(5 + 1024)
    ring.add(live)
    assert ring.pop(5) is None
    assert ring.live == 1
    assert ring.pop(5 + 1024) == (live, None)


def test_one_process_of_several_fills_consecutive_slots_with_its_ids() -> None:
    ring = InFlight(100, processes=3)  # process 2 of 3 sends ids 2, 5, 8, ...
    ops = [op(2 + 3 * k) for k in range(1024)]  # a whole ring of them, no two in one slot
    for o in ops:
        ring.add(o)
    assert ring.live == 1024
    assert [ring.pop(o.id) for o in ops] == [(o, None) for o in ops]


def test_expire_yields_the_oldest_first_up_to_the_deadline() -> None:
    ring = InFlight(100)
    ops = [op(i, intended_ns=(i + 1) * 10) for i in range(4)]  # intended at 10, 20, 30, 40
    for o in ops:
        ring.add(o)
    assert [o.intended_ns for o, _ in ring.expire(25)] == [10, 20]
    assert ring.live == 2
    assert [o.intended_ns for o, _ in ring.expire(1_000)] == [30, 40]
    assert ring.live == 0


def test_expire_includes_an_op_intended_exactly_at_the_deadline() -> None:
    ring = InFlight(100)
    ring.add(op(0, intended_ns=500))
    assert [o.id for o, _ in ring.expire(500)] == [0]


def test_expire_skips_ops_already_completed() -> None:
    ring = InFlight(100)
    for i in range(5):
        ring.add(op(i, intended_ns=i))
    ring.pop(0)
    ring.pop(2)
    assert [o.id for o, _ in ring.expire(10)] == [1, 3, 4]


def test_expire_walks_from_the_oldest_slot_and_stops_at_the_first_op_not_yet_due() -> None:
    ring = InFlight(100)
    ring.add(op(0, intended_ns=100))
    ring.add(op(1, intended_ns=5))  # out of order: behind a younger op, it waits for it
    assert list(ring.expire(50)) == []
    assert ring.live == 2


def test_there_is_room_for_an_op_within_a_ring_of_the_oldest_live_one() -> None:
    ring = InFlight(100)
    ring.add(op(0))
    assert ring.room_for(1023)


def test_there_is_no_room_when_the_oldest_live_op_is_a_ring_behind() -> None:
    ring = InFlight(100)
    ring.add(op(0))
    assert not ring.room_for(1024), "op 1024 would take op 0's slot"


def test_room_returns_once_the_old_op_is_finished() -> None:
    ring = InFlight(100)
    ring.add(op(0))
    ring.add(op(1))
    ring.pop(0)
    assert ring.room_for(1024)
    assert not ring.room_for(1025), "op 1 is still live in the slot op 1025 needs"


def test_room_is_counted_in_this_processs_ops() -> None:
    ring = InFlight(100, processes=2)
    ring.add(op(1))  # process 1's first op, sequence 0
    assert ring.room_for(1 + 2 * 1023)
    assert not ring.room_for(1 + 2 * 1024)


def a_pass(first_id: int, n: int, processes: int = 1) -> tuple[list[Op], np.ndarray, np.ndarray]:
    ids = np.arange(first_id, first_id + n * processes, processes, dtype=np.int64)
    intended = ids * 10
    return [op(int(i), int(t)) for i, t in zip(ids, intended, strict=True)], ids, intended


def test_a_pass_added_at_once_pops_op_by_op_with_its_instants() -> None:
    ring = InFlight(100, processes=2)
    ops, ids, intended = a_pass(1, 50, processes=2)
    ring.add_pass(ops, ids, intended, sent_ns=7)
    assert ring.live == 50
    assert ring.pop(int(ids[3])) == (ops[3], None)
    assert (ring.intended[(int(ids[4]) // 2) & ring.mask], ring.sent[(int(ids[4]) // 2) & ring.mask]) == (
        int(intended[4]), 7)


def test_a_pass_that_reaches_the_end_of_the_ring_wraps_to_its_start() -> None:
    ring = InFlight(100)  # 1024 slots
    ops, ids, intended = a_pass(1000, 50)
    ring.add_pass(ops, ids, intended, sent_ns=0)
    assert [ring.pop(int(i)) for i in ids] == [(o, None) for o in ops]
    assert ring.live == 0


def test_a_pass_with_a_gap_in_its_ids_is_refused() -> None:
    ring = InFlight(100)
    ops, _, intended = a_pass(0, 3)
    with pytest.raises(ValueError, match="consecutive"):
        ring.add_pass(ops, np.array([0, 1, 5], dtype=np.int64), intended, sent_ns=0)


def test_pop_many_removes_the_live_ids_and_counts_the_others() -> None:
    ring = InFlight(100)
    ops, ids, intended = a_pass(0, 10)
    ring.add_pass(ops, ids, intended, sent_ns=0)
    ring.pop(4)
    popped = ring.pop_many([2, 3, 4, 1029])  # 4 is already finished, 1029 never was
    assert popped is not None
    slots, not_in_flight = popped
    assert (sorted(slots.tolist()), not_in_flight, ring.live) == ([2, 3], 2, 7)
    assert ring.pop(3) is None, "a popped op pops once"


def test_pop_many_leaves_ops_with_a_task_to_pop_one_by_one() -> None:
    ring = InFlight(100)
    ring.add(op(0))
    ring.add(op(1), object())  # type: ignore[arg-type]
    assert ring.pop_many([0, 1]) is None
    assert ring.live == 2


def test_pop_many_with_an_id_twice_removes_nothing() -> None:
    ring = InFlight(100)
    ring.add(op(0))
    assert ring.pop_many([0, 0]) is None
    assert ring.live == 1


def test_expire_skips_a_long_run_of_finished_ops() -> None:
    ring = InFlight(100)
    ops, ids, intended = a_pass(0, 500)
    ring.add_pass(ops, ids, intended, sent_ns=0)
    assert ring.pop_many(list(range(0, 499))) is not None
    assert [o.id for o, _ in ring.expire(10**9)] == [499]
    assert ring.live == 0


def test_room_returns_once_a_batch_of_old_ops_is_finished() -> None:
    ring = InFlight(100)
    ops, ids, intended = a_pass(0, 30)
    ring.add_pass(ops, ids, intended, sent_ns=0)
    assert not ring.room_for(1024)
    assert ring.pop_many(list(range(0, 20))) is not None
    assert ring.room_for(1024 + 19) and not ring.room_for(1024 + 20)
