"""Shopper sessions for the cart target, as open-loop arrivals.

The harness decides when an op happens and of which kind; this module decides on which
cart and with which data. A pool of active sessions is served least-recently-used first
(with a little randomness), so a session's ops are about `sessions / rate` seconds apart:
that is the think time. A session ends after a random number of ops and a new cart opens.

Choices come from a seeded RNG and the *intended* state of each cart (updated when an op is
issued, not when it completes), so the op sequence is the same for a seed whatever the
latencies, as long as no write fails (a failed write re-syncs the session from what the
server acknowledged). Each acknowledged write's version is recorded; `verify` checks every
cart touched against the stored events and the projection (see shadow.py).

Options (workload_options):
  sessions          active sessions per generator process (default 200)
  session_ops       mean ops per session before it ends (default 20)
  catalogue_size    products p-0001..p-N to choose from (default 500; the target's catalogue)
  max_add_quantity  largest quantity added at once (default 3)
  tabs              consecutive ops sent to the same cart, concurrently in flight (default 1;
                    >1 is the multi-tab race)
  if_match_rate     fraction of writes carrying If-Match with the last acknowledged version
  consistency       "strong" (reads must show every acknowledged write) or "eventual" (async
                    projections: reads are not checked, the driver measures the lag instead)
  namespace         fixes the cart id namespace (default: random per run, so runs never share carts)
  verify_sample     carts whose cached query is checked over HTTP at the end (default 200)
  keep_carts        0 (default): every cart's record is kept and verified at the end. N > 0: only the
                    N most recently finished carts (and every active one) are; older finished carts
                    are dropped and only counted, so a soak's memory does not grow with its length
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workloads.cart.shadow import CartRecord, Lines, apply_command, check_cart, replay_commands

WRITES = frozenset({"add", "update", "remove", "clear"})
CART_READS = frozenset({"view", "summary", "history"})
MAX_LINE_QUANTITY = 99
MAX_LINES = 50


@dataclass(slots=True)
class Session:
    record: CartRecord
    ops_left: int
    lines: Lines = field(default_factory=dict)  # intended state
    started: bool = False  # an add was issued
    resync: bool = False  # a write failed: rebuild intended state from acknowledged writes


class CartWorkload:
    def __init__(self, options: dict[str, Any], seed: int, process_index: int) -> None:
        o = options
        self.sessions_target = int(o.get("sessions", 200))
        self.session_ops = float(o.get("session_ops", 20))
        self.catalogue_size = int(o.get("catalogue_size", 500))
        self.max_add = int(o.get("max_add_quantity", 3))
        self.tabs = max(1, int(o.get("tabs", 1)))
        self.if_match_rate = float(o.get("if_match_rate", 0.0))
        self.strong = o.get("consistency", "strong") == "strong"
        self.verify_sample = int(o.get("verify_sample", 200))
        self.keep_carts = int(o.get("keep_carts", 0))
        self._finished: deque[str] = deque()  # finished carts, oldest first (with keep_carts)
        self.dropped: dict[str, int] = dict.fromkeys(("carts", "writes", "acked", "conflicts", "stale_reads"), 0)
        self.rng = random.Random(f"cart:{seed}:{process_index}")
        namespace = int(o["namespace"]) if "namespace" in o else secrets.randbits(32)
        self._id_base = (namespace << 96) | (process_index << 64)
        self._next_cart = 0
        self.carts: dict[str, CartRecord] = {}
        self.pool: deque[Session] = deque()
        self._burst: Session | None = None
        self._burst_left = 0
        for _ in range(self.sessions_target):
            self.pool.append(self._new_session())

    # -- sessions ----------------------------------------------------------------------------
    def _new_session(self) -> Session:
        self._next_cart += 1
        cart_id = str(uuid.UUID(int=self._id_base | self._next_cart))
        record = CartRecord(cart_id)
        self.carts[cart_id] = record
        ops = max(1, round(self.rng.expovariate(1.0 / self.session_ops)))
        return Session(record, ops)

    def _pick(self) -> Session:
        if self._burst is not None and self._burst_left > 0:
            self._burst_left -= 1
            return self._burst
        window = min(8, len(self.pool))
        index = self.rng.randrange(window)
        if self.tabs == 1 and self.pool[index].record.in_flight:
            # a shopper waits for the answer before the next click: skip sessions still waiting
            # (only happens when latency exceeds the think time, so the sequence stays seeded)
            idle = next((i for i in range(min(64, len(self.pool))) if not self.pool[i].record.in_flight), None)
            if idle is not None:
                index = idle
        session = self.pool[index]
        del self.pool[index]
        session.ops_left -= 1
        if session.ops_left > 0:
            self.pool.append(session)
        else:
            self.pool.append(self._new_session())
            if self.keep_carts:
                self._finish(session.record)
        self._burst, self._burst_left = session, self.tabs - 1
        return session

    def _finish(self, record: CartRecord) -> None:
        """A session ended: past `keep_carts` finished carts, the oldest one's record goes (its
        counts stay). One with writes still in flight waits for the next turn."""
        self._finished.append(record.cart_id)
        for _ in range(len(self._finished) - self.keep_carts):
            cart_id = self._finished.popleft()
            old = self.carts[cart_id]
            if old.in_flight:
                self._finished.append(cart_id)
                continue
            del self.carts[cart_id]
            d = self.dropped
            d["carts"] += 1 if old.issued_writes else 0
            d["writes"] += old.issued_writes
            d["acked"] += len(old.acked)
            d["conflicts"] += old.conflicts
            d["stale_reads"] += len(old.stale_reads)

    def _product(self) -> str:
        return f"p-{self.rng.randint(1, self.catalogue_size):04d}"

    # -- ops -------------------------------------------------------------------------------
    def next_op(self, kind: str) -> tuple[str, Any]:
        if kind == "browse":  # a page of the catalogue, as a listing page would show it
            return "browse", {"offset": self.rng.randrange(0, self.catalogue_size, 20), "limit": 20}
        s = self._pick()
        if s.resync:
            s.lines = replay_commands(s.record)
            s.resync = False
        if kind in CART_READS or kind == "clear":
            # eventual reads wait for an acknowledged write: before the projector sees a new
            # cart, a query of it is a 404 by design
            if not s.started or (not self.strong and kind in CART_READS and not s.record.max_acked):
                kind = "add"
        elif kind in ("update", "remove") and not s.lines:
            kind = "add"
        elif kind not in WRITES:
            raise ValueError(f"unknown cart op kind {kind!r}")
        if kind == "add":
            return "add", self._add(s)
        if kind in CART_READS:
            return kind, {"cart": s.record.cart_id, "min_version": s.record.max_acked}
        return kind, self._write(s, kind)

    def _write_payload(self, s: Session, kind: str, product: str | None, qty: int | None) -> dict[str, Any]:
        s.record.issued_writes += 1
        s.record.in_flight += 1
        apply_command(s.lines, kind, product, qty)
        payload: dict[str, Any] = {"cart": s.record.cart_id}
        if product is not None:
            payload["product"] = product
        if qty is not None:
            payload["quantity"] = qty
        if self.if_match_rate and s.record.max_acked and self.rng.random() < self.if_match_rate:
            payload["if_match"] = s.record.max_acked
        return payload

    def _add(self, s: Session) -> dict[str, Any]:
        s.started = True
        qty = self.rng.randint(1, self.max_add)
        product = self._product()
        if len(s.lines) >= MAX_LINES and product not in s.lines:
            product = self.rng.choice(list(s.lines))
        if s.lines.get(product, 0) + qty > MAX_LINE_QUANTITY:
            return self._write_payload(s, "update", product, qty)
        return self._write_payload(s, "add", product, qty)

    def _write(self, s: Session, kind: str) -> dict[str, Any]:
        if kind == "clear":
            return self._write_payload(s, "clear", None, None)
        product = self.rng.choice(list(s.lines))
        if kind == "remove":
            return self._write_payload(s, "remove", product, None)
        return self._write_payload(s, "update", product, self.rng.randint(1, 9))

    # -- feedback --------------------------------------------------------------------------
    def on_result(self, op: Any, error: str | None) -> None:
        p = op.payload
        if not p or "cart" not in p:
            return
        record = self.carts.get(p["cart"])
        if record is None:
            return
        if op.kind in WRITES:
            record.in_flight -= 1
            version = p.get("version")
            if error is None and version:
                record.acked[version] = (op.kind, p.get("product"), p.get("quantity"))
                record.max_acked = max(record.max_acked, version)
            else:
                record.failed_writes += 1
                if error == "http_409":
                    record.conflicts += 1
                self._mark_resync(record.cart_id)
        elif error is None and self.strong and op.kind in ("view", "summary"):
            seen = p.get("version")
            if seen is not None and seen < p["min_version"]:
                record.stale_reads.append((seen, p["min_version"]))

    def _mark_resync(self, cart_id: str) -> None:
        for s in self.pool:
            if s.record.cart_id == cart_id:
                s.resync = True
                return
        if self._burst is not None and self._burst.record.cart_id == cart_id:
            self._burst.resync = True

    # -- verification ----------------------------------------------------------------------
    async def verify(self, driver: Any) -> list[str]:
        touched = [c for c, r in self.carts.items() if r.issued_writes]
        problems = list(await driver.verify(touched))
        if self.dropped["stale_reads"]:  # found while the run went on, in carts no longer kept
            problems.append(f"{self.dropped['stale_reads']} stale reads (older than an acknowledged write) "
                            f"in {self.dropped['carts']} finished carts dropped by keep_carts")
        state = await driver.fetch_state(touched)
        for cart_id in touched:
            events, projection, _ = state[cart_id]
            problems.extend(check_cart(self.carts[cart_id], events, projection))
        # the cached query must show the last event of a sample of carts
        sample = self.rng.sample(touched, min(self.verify_sample, len(touched)))
        for cart_id in sample:
            events = state[cart_id][0]
            if not events:
                continue
            status, body = await driver.get(f"/api/carts/{cart_id}")
            if status != 200 or body["version"] != len(events):
                got = body.get("version") if isinstance(body, dict) else body
                problems.append(f"cart {cart_id}: query answered {status} v{got}, store has v{len(events)}")
        if len(problems) > 50:
            problems = [*problems[:50], f"... and {len(problems) - 50} more problems"]
        return problems

    def stats(self) -> dict[str, int]:
        """Counts for reports and tests, dropped carts (`keep_carts`) included; `verified_carts`
        is how many carts `verify` checks."""
        records = self.carts.values()
        d = self.dropped
        kept = sum(1 for r in records if r.issued_writes)
        return {
            "carts": kept + d["carts"],
            "writes": sum(r.issued_writes for r in records) + d["writes"],
            "acked": sum(len(r.acked) for r in records) + d["acked"],
            "conflicts": sum(r.conflicts for r in records) + d["conflicts"],
            "stale_reads": sum(len(r.stale_reads) for r in records) + d["stale_reads"],
            "verified_carts": kept,
        }
