"""Ops awaiting an asynchronous completion: a ring of slots indexed by the op's sequence number.

An op's id is its index in the run's global schedule; process i of N sends ids i, i+N, ..., so
`id // N` numbers this process's ops 0, 1, 2, ... and picks a slot in O(1) with no dict, no
string and no per-op allocation. Ops are added in schedule order, so timeouts are found by
walking from the oldest slot until an op is not yet due to expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from harness.protocol import Op


class InFlight:
    __slots__ = ("live", "low", "mask", "ops", "processes", "tasks")

    def __init__(self, max_in_flight: int, processes: int = 1) -> None:
        size = 1 << max(10, (max(1, max_in_flight) - 1).bit_length())
        self.mask = size - 1
        self.ops: list[Op | None] = [None] * size
        self.tasks: list[asyncio.Task[Any] | None] = [None] * size
        self.processes = processes
        self.low = 0  # every sequence number below it is free
        self.live = 0

    def __len__(self) -> int:
        return self.live

    def room_for(self, op_id: int) -> bool:
        """Whether `op_id`'s slot is free (it is not, when the oldest live op is a ring behind)."""
        seq = op_id // self.processes
        if seq - self.low <= self.mask:
            return True
        ops, mask = self.ops, self.mask
        while self.low < seq and ops[self.low & mask] is None:  # skip slots finished meanwhile
            self.low += 1
        return seq - self.low <= mask

    def add(self, op: Op, task: asyncio.Task[Any] | None = None) -> None:
        slot = (op.id // self.processes) & self.mask
        self.ops[slot] = op
        self.tasks[slot] = task
        self.live += 1

    def pop(self, op_id: int) -> tuple[Op, asyncio.Task[Any] | None] | None:
        """The op with this id, removed; None if it is not in flight (finished, or never was)."""
        slot = (op_id // self.processes) & self.mask
        op = self.ops[slot]
        if op is None or op.id != op_id:
            return None
        task = self.tasks[slot]
        self.ops[slot] = None
        self.tasks[slot] = None
        self.live -= 1
        return op, task

    def expire(self, deadline_ns: int) -> Iterator[tuple[Op, asyncio.Task[Any] | None]]:
        """Remove and yield, oldest first, every op intended at or before `deadline_ns`."""
        ops, tasks, mask = self.ops, self.tasks, self.mask
        while self.live:
            slot = self.low & mask
            op = ops[slot]
            if op is None:
                self.low += 1
                continue
            if op.intended_ns > deadline_ns:
                return
            task = tasks[slot]
            ops[slot] = None
            tasks[slot] = None
            self.live -= 1
            self.low += 1
            yield op, task
