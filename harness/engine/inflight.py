"""Ops awaiting an asynchronous completion: a ring of slots indexed by the op's sequence number.

An op's id is its index in the run's global schedule; process i of N sends ids i, i+N, ..., so
`id // N` numbers this process's ops 0, 1, 2, ... and picks a slot in O(1) with no dict, no
string and no per-op allocation. Ops are added in schedule order, so timeouts are found by
walking from the oldest slot until an op is not yet due to expire.

A slot's op id (`ids`, FREE when the slot is free) says whether it is live; its intended and sent
instants sit beside it in flat int64 arrays that numpy sees without a copy, so a whole pass of
ops goes in, and a transport's batch of acknowledgements comes out, in a few array operations
instead of a Python step per op. `ops` keeps each slot's `Op` for the paths that need the object
(timeouts, errors, carried tasks); a slot emptied by `pop_many` keeps its `Op` until the caller
has booked it and calls `forget`.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from harness.protocol import Op

FREE = -1


class InFlight:
    __slots__ = ("_ids", "_intended", "_sent", "carried", "high", "ids", "intended", "live", "low", "mask", "ops",
                 "processes", "sent", "tasks")

    def __init__(self, max_in_flight: int, processes: int = 1) -> None:
        size = 1 << max(10, (max(1, max_in_flight) - 1).bit_length())
        self.mask = size - 1
        self.ops: list[Op | None] = [None] * size
        self.tasks: list[asyncio.Task[Any] | None] = [None] * size
        self.ids = array("q", [FREE]) * size
        self.intended = array("q", [0]) * size
        self.sent = array("q", [0]) * size
        self._ids = np.frombuffer(self.ids, dtype=np.int64)  # the same memory, seen by numpy
        self._intended = np.frombuffer(self.intended, dtype=np.int64)
        self._sent = np.frombuffer(self.sent, dtype=np.int64)
        self.processes = processes
        self.low = 0  # every sequence number below it is free
        self.high = 0  # one past the highest sequence number added
        self.live = 0
        self.carried = 0  # live ops that have a task

    def __len__(self) -> int:
        return self.live

    def _first_live(self, stop: int) -> int:
        """From `low`, skip free slots (up to sequence `stop`); returns the new `low`."""
        ids, mask, low = self.ids, self.mask, self.low
        while low < stop and ids[low & mask] == FREE:
            slot = low & mask
            span = min(stop - low, mask + 1 - slot)
            if span > 16:  # a long run of finished ops: let numpy find the next live one
                live = np.flatnonzero(self._ids[slot:slot + span] != FREE)
                low += int(live[0]) if live.size else span
            else:
                low += 1
        self.low = low
        return low

    def room_for(self, op_id: int) -> bool:
        """Whether `op_id`'s slot is free (it is not, when the oldest live op is a ring behind)."""
        seq = op_id // self.processes
        if seq - self.low <= self.mask:
            return True
        return seq - self._first_live(seq) <= self.mask

    def add(self, op: Op, task: asyncio.Task[Any] | None = None) -> None:
        seq = op.id // self.processes
        slot = seq & self.mask
        self.ops[slot] = op
        self.tasks[slot] = task
        self.ids[slot] = op.id
        self.intended[slot] = op.intended_ns
        self.sent[slot] = op.sent_ns
        self.live += 1
        if task is not None:
            self.carried += 1
        if seq >= self.high:
            self.high = seq + 1

    def add_pass(self, ops: list[Op], ids: np.ndarray, intended: np.ndarray, sent_ns: int) -> None:
        """Add a pass of ops with consecutive sequence numbers (one process's ids in schedule
        order, `room_for` the last one checked), sent at one instant, without tasks."""
        n = len(ops)
        seq = int(ids[0]) // self.processes
        if int(ids[-1]) // self.processes - seq != n - 1:
            raise ValueError("add_pass needs consecutive sequence numbers")
        slot = seq & self.mask
        first = min(n, self.mask + 1 - slot)  # the pass may wrap around the ring's end once
        for lo, hi, a, b in ((slot, slot + first, 0, first), (0, n - first, first, n)):
            if hi > lo:
                self.ops[lo:hi] = ops if (a, b) == (0, n) else ops[a:b]
                self._ids[lo:hi] = ids[a:b]
                self._intended[lo:hi] = intended[a:b]
                self._sent[lo:hi] = sent_ns
        self.live += n
        if seq + n > self.high:
            self.high = seq + n

    def pop(self, op_id: int) -> tuple[Op, asyncio.Task[Any] | None] | None:
        """The op with this id, removed; None if it is not in flight (finished, or never was)."""
        slot = (op_id // self.processes) & self.mask
        if self.ids[slot] != op_id:
            return None
        self.ids[slot] = FREE
        op = self.ops[slot]
        self.ops[slot] = None
        task = self.tasks[slot]
        if task is not None:
            self.tasks[slot] = None
            self.carried -= 1
        self.live -= 1
        assert op is not None
        return op, task

    def pop_many(self, op_ids: Sequence[int]) -> tuple[np.ndarray, int] | None:
        """Remove the ops with these ids at once; returns (their slots, how many ids were not in
        flight). None, with nothing removed, when some op has a task (it must be cancelled) or an
        id comes twice: then op by op with `pop`. Their `Op`s stay in `ops` until `forget`."""
        if self.carried:
            return None
        ids = np.fromiter(op_ids, dtype=np.int64, count=len(op_ids))
        slots = (ids // self.processes) & self.mask
        slots = slots[self._ids[slots] == ids]
        if slots.size > 1 and np.unique(slots).size != slots.size:
            return None
        self._ids[slots] = FREE
        self.live -= int(slots.size)
        return slots, len(op_ids) - int(slots.size)

    def forget(self, slots: np.ndarray) -> None:
        """Drop the `Op`s of slots `pop_many` emptied: a ring full of finished ops would otherwise
        keep them all alive, and every full garbage collection would walk them (41 ms seen)."""
        ops = self.ops
        for slot in slots.tolist():
            ops[slot] = None

    def expire(self, deadline_ns: int) -> Iterator[tuple[Op, asyncio.Task[Any] | None]]:
        """Remove and yield, oldest first, every op intended at or before `deadline_ns`."""
        ids, ops, tasks, intended, mask = self.ids, self.ops, self.tasks, self.intended, self.mask
        while self.live:
            low = self._first_live(self.high)
            if low >= self.high:
                return
            slot = low & mask
            if intended[slot] > deadline_ns:
                return
            op, task = ops[slot], tasks[slot]
            ids[slot] = FREE
            ops[slot] = None
            if task is not None:
                tasks[slot] = None
                self.carried -= 1
            self.live -= 1
            self.low = low + 1
            assert op is not None
            yield op, task
