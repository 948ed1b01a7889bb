"""BankWorkload: what the bank scenarios send, and the check that nothing was lost or doubled.

Kinds: open, deposit, withdrawal, transfer, close (the `[[ops]]` mix), plus deliberately bad ones
drawn before the mix by share options: duplicate (an applied event sent again, same event_id),
corrupt (bytes that are not a valid record), overdraft (a withdrawal larger than any balance the
account can have), unknown_account (a deposit to an account that was never opened). Each payload
says which outcome it expects, so the driver counts an expected rejection as ok.

Money ops only touch accounts whose opening was acknowledged; until one is, every op is an open.

Options (spec `[workload_options]`): duplicate_share, corrupt_share, overdraft_share,
unknown_account_share (0..1, default 0), min_accounts (20: below it, close becomes open),
max_accounts (10,000: at it, open becomes deposit, so a soak's shadow ledger stops growing),
verify_settle_s (30: how long verify waits for outstanding outcomes before comparing),
run_tag (id prefix; default: unique per run, so runs without reset do not collide).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from decimal import Decimal
from typing import Any

from workloads.bank.fakedata import FakeData
from workloads.bank.ledger import ZERO, Account, Ledger, Pending

BAD_KINDS = ("duplicate", "corrupt", "overdraft", "unknown_account")
ONE = Decimal("1.00")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BankWorkload:
    #: the op kinds a spec's [[ops]] may name (the bad kinds come from the *_share options)
    KINDS = ("open", "deposit", "withdrawal", "transfer", "close")

    def __init__(self, options: dict[str, Any], seed: int, process_index: int) -> None:
        self.fake = FakeData(f"{seed}:{process_index}")
        self.rng = self.fake.rng
        tag = str(options.get("run_tag") or _base36(time.time_ns() // 1_000_000))
        self.prefix = f"{tag}-{process_index}-"
        self.shares = [(k, float(options.get(f"{k}_share", 0.0))) for k in BAD_KINDS]
        self.bad_total = sum(s for _, s in self.shares)
        if self.bad_total > 1:
            raise ValueError("the *_share options add up to more than 1")
        self.min_accounts = int(options.get("min_accounts", 20))
        self.max_accounts = int(options.get("max_accounts", 10_000))
        self.settle_s = float(options.get("verify_settle_s", 30))
        self.ledger = Ledger()
        self.active: list[str] = []  # opened, not closing: the money ops draw from here
        self._active_pos: dict[str, int] = {}
        self.clients: list[str] = []
        self.applied_recent: deque[dict[str, Any]] = deque(maxlen=1000)  # candidates for duplicates
        self._n = 0
        self.generated: dict[str, int] = {}

    # ---- the protocol ------------------------------------------------------------------------
    def next_op(self, kind: str) -> tuple[str, Any]:
        if self.bad_total:
            r = self.rng.random()
            for bad, share in self.shares:
                if r < share:
                    out = getattr(self, f"_{bad}")()
                    if out is not None:
                        return self._count(out)
                    break
                r -= share
        if not self.active or (kind == "open" and len(self.ledger.accounts) < self.max_accounts):
            return self._count(self._open())
        maker = {
            "deposit": self._deposit,
            "withdrawal": self._withdrawal,
            "transfer": self._transfer,
            "close": self._close,
        }.get(kind, self._deposit)
        return self._count(maker() or self._deposit())

    def on_result(self, op: Any, error: str | None) -> None:
        p: dict[str, Any] = op.payload
        token = p["token"]
        if error is None:
            status = p["expect"]
        elif error.split(":", 1)[0] in ("rejected", "dlq"):
            status = error.split(":", 1)[0]
        elif error.startswith("unexpected_"):
            status = error.removeprefix("unexpected_")
        else:
            return  # send/produce failure: unknown fate, resolved from the ledger table in verify
        if status != p["expect"]:
            self.ledger.surprises.append(f"{op.kind} {p.get('token')}: expected {p['expect']}, got {error}")
        pend = self.ledger.settle(token, applied=(status == "applied" and p["expect"] == "applied"))
        if pend is not None and status == "applied" and p["expect"] == "applied":
            self._on_applied(p, pend)

    async def verify(self, driver: Any) -> list[str]:
        """Reconcile: every event sent has an outcome, or the ledger's own record says what became
        of it. "Not heard" (the ledger applied it, the driver never got its outcome) and "lost"
        (the ledger never saw it) are different problems, and only the second is a loss."""
        problems: list[str] = []
        deadline = time.monotonic() + self.settle_s
        while driver.tallies()["in_flight"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # outcomes still on their way (a backlog being worked off)
        t = driver.tallies()
        st = t["statuses"]
        settled = sum(st.get(s, 0) for s in ("applied", "duplicate", "rejected", "dlq"))
        unheard = t["sent"] - settled - t["produce_failed"]
        for what, n in sorted(t["surprises"].items()):
            problems.append(f"outcome: {n} x {what}")
        heard_in_ledger, lost = await self._resolve_pending(driver, problems)
        if unheard > 0:
            problems.append(
                f"{unheard} of {t['sent']} events sent got no outcome at the driver (booked as timeouts): "
                f"{heard_in_ledger} of them are in the ledger (applied, but not heard by the harness), "
                f"{lost} are not (lost)")
        problems += self._compare(self.ledger.expected_state(), await driver.accounts(self.prefix))
        if hasattr(driver, "verify"):  # what the driver saw go wrong itself (a dropped subscriber)
            problems += list(await driver.verify())
        return problems

    # ---- ops ---------------------------------------------------------------------------------
    def _payload(
        self, event: str, key: str, fields: dict[str, Any], expect: str, pend: Pending | None, token: str | None = None
    ) -> dict[str, Any]:
        token = token or fields["event_id"]
        payload = {"event": event, "key": key, "fields": fields, "expect": expect, "token": token}
        if pend is not None:
            pend.payload = payload
            self.ledger.add(token, pend)
        return payload

    def _open(self) -> tuple[str, Any]:
        f = self.fake
        self._n += 1
        acc_id = f"{self.prefix}C{self._n:08d}"
        if self.clients and self.rng.random() < 0.3:
            client = self.rng.choice(self.clients)
        else:
            client = f"{self.prefix}K{len(self.clients) + 1:07d}"
            self.clients.append(client)
        initial = f.montant(median=300, sigma=1.2, hi=50000) if self.rng.random() < 0.7 else ZERO
        self.ledger.accounts[acc_id] = Account(acc_id, client)
        eid = f.uuid()
        fields = {
            "event_id": eid,
            "timestamp": _now_ms(),
            "compte_id": acc_id,
            "client_id": client,
            "type_compte": f.type_compte(),
            "devise": "EUR",
            "solde_initial": initial,
            "metadata": {"iban": f.iban(), "titulaire": f.titulaire()},
        }
        pend = Pending("applied", eid, ((acc_id, initial),), opens=acc_id)
        return "open", self._payload("CompteOuvert", acc_id, fields, "applied", pend)

    def _money(self, event: str, acc_id: str, montant: Decimal, prefix: str) -> dict[str, Any]:
        f = self.fake
        return {
            "event_id": f.uuid(),
            "timestamp": _now_ms(),
            "compte_id": acc_id,
            "montant": montant,
            "devise": "EUR",
            "reference": f.reference(prefix),
            "canal": f.canal(),
            "metadata": None,
        }

    def _deposit(self) -> tuple[str, Any]:
        acc_id = self._pick()
        if acc_id is None:
            return self._open()
        fields = self._money("DepotEffectue", acc_id, self.fake.montant(median=80, sigma=1.1), "DEP")
        pend = Pending("applied", fields["event_id"], ((acc_id, fields["montant"]),))
        return "deposit", self._payload("DepotEffectue", acc_id, fields, "applied", pend)

    def _withdrawal(self) -> tuple[str, Any] | None:
        acc = self._pick_funded()
        if acc is None:
            return None
        montant = min(self.fake.montant(median=50, sigma=1.0), acc.available)
        fields = self._money("RetraitEffectue", acc.id, montant, "RET")
        pend = Pending("applied", fields["event_id"], ((acc.id, -montant),))
        return "withdrawal", self._payload("RetraitEffectue", acc.id, fields, "applied", pend)

    def _transfer(self) -> tuple[str, Any] | None:
        src = self._pick_funded()
        if src is None or len(self.active) < 2:
            return None
        dst_id = self._pick()
        while dst_id == src.id:
            dst_id = self._pick()
        f = self.fake
        montant = min(f.montant(median=120, sigma=1.2), src.available)
        eid = f.uuid()
        fields = {
            "event_id": eid,
            "timestamp": _now_ms(),
            "compte_source_id": src.id,
            "compte_destination_id": dst_id,
            "montant": montant,
            "devise": "EUR",
            "motif": f.motif(),
            "reference": f.reference("VIR"),
            "statut": "INITIE",
            "metadata": None,
        }
        pend = Pending("applied", eid, ((src.id, -montant), (dst_id, montant)))  # type: ignore[arg-type]
        return "transfer", self._payload("VirementEmis", src.id, fields, "applied", pend)

    def _close(self) -> tuple[str, Any] | None:
        if len(self.active) <= self.min_accounts:
            return self._open()
        for _ in range(5):  # only an account with nothing in flight: a late deposit would bounce
            acc = self.ledger.accounts[self.rng.choice(self.active)]
            if acc.pending_ops == 0:
                break
        else:
            return None
        self._deactivate(acc.id)
        acc.closing = True
        eid = self.fake.uuid()
        fields = {
            "event_id": eid,
            "timestamp": _now_ms(),
            "compte_id": acc.id,
            "motif": "Demande du client",
            "metadata": None,
        }
        return "close", self._payload("CompteFerme", acc.id, fields, "applied", Pending("applied", eid, closes=acc.id))

    # ---- deliberately bad ops ------------------------------------------------------------------
    def _duplicate(self) -> tuple[str, Any] | None:
        if not self.applied_recent:
            return None
        orig = self.rng.choice(self.applied_recent)
        self._n += 1
        token = f"dup-{self._n}"
        return "duplicate", {**orig, "expect": "duplicate", "token": token}

    def _corrupt(self) -> tuple[str, Any] | None:
        r = self.rng
        variant = r.randrange(3)
        junk = r.randbytes(r.randrange(8, 64))
        if variant == 0:
            raw = b"\x00" + (2**31 - 7).to_bytes(4, "big") + junk  # a schema id nobody registered
        elif variant == 1:
            raw = b"\x7f" + junk  # not the Confluent magic byte
        else:
            raw = b"\x00\x00"  # truncated header
        self._n += 1
        key = self.rng.choice(self.active) if self.active else f"{self.prefix}corrupt"
        return "corrupt", {
            "event": "DepotEffectue",
            "key": key,
            "fields": None,
            "raw": raw,
            "expect": "dlq",
            "token": f"bad-{self._n}",
        }

    def _overdraft(self) -> tuple[str, Any] | None:
        acc_id = self._pick()
        if acc_id is None:
            return None
        acc = self.ledger.accounts[acc_id]
        montant = acc.ceiling + Decimal("1000.00")
        fields = self._money("RetraitEffectue", acc_id, montant, "RET")
        pend = Pending("rejected", fields["event_id"])
        return "overdraft", self._payload("RetraitEffectue", acc_id, fields, "rejected", pend)

    def _unknown_account(self) -> tuple[str, Any] | None:
        self._n += 1
        ghost = f"{self.prefix}U{self._n:08d}"
        fields = self._money("DepotEffectue", ghost, self.fake.montant(), "DEP")
        return "unknown_account", self._payload(
            "DepotEffectue", ghost, fields, "rejected", Pending("rejected", fields["event_id"])
        )

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _count(self, out: tuple[str, Any]) -> tuple[str, Any]:
        self.generated[out[0]] = self.generated.get(out[0], 0) + 1
        return out

    def _on_applied(self, p: dict[str, Any], pend: Pending) -> None:
        if pend.opens is not None:
            self._activate(pend.opens)
        if p["event"] != "CompteFerme":
            self.applied_recent.append({k: p[k] for k in ("event", "key", "fields")})

    def _activate(self, acc_id: str) -> None:
        self._active_pos[acc_id] = len(self.active)
        self.active.append(acc_id)

    def _deactivate(self, acc_id: str) -> None:
        i = self._active_pos.pop(acc_id)
        last = self.active.pop()
        if last != acc_id:
            self.active[i] = last
            self._active_pos[last] = i

    def _pick(self) -> str | None:
        return self.rng.choice(self.active) if self.active else None

    def _pick_funded(self) -> Account | None:
        for _ in range(5):
            acc_id = self._pick()
            if acc_id is None:
                return None
            acc = self.ledger.accounts[acc_id]
            if acc.available >= ONE:
                return acc
        return None

    async def _resolve_pending(self, driver: Any, problems: list[str]) -> tuple[int, int]:
        """Ops whose completion the harness did not see (timeouts): ask the ledger table what happened.
        Returns (applied though not heard, absent from the ledger)."""
        pend = self.ledger.pending
        ids = [
            p.event_id
            for p in pend.values()
            if p.event_id is not None and p.expect == "applied" and (p.payload is None or p.payload.get("sent"))
        ]
        statuses = await driver.event_statuses(ids) if ids else {}
        lost = heard = 0
        for token, p in list(pend.items()):
            if p.payload is not None and not p.payload.get("sent"):
                self.ledger.settle(token, applied=False)  # never sent: the harness counts it as not sent
                continue
            if p.expect != "applied":
                self.ledger.settle(token, applied=False)
                continue
            st = statuses.get(p.event_id or "")
            if st is None:
                lost += 1
            elif st == "applied":
                heard += 1
            else:
                problems.append(f"event {p.event_id}: expected applied, the ledger says {st}")
            self.ledger.settle(token, applied=(st == "applied"))
        if lost:
            problems.append(f"{lost} events sent but absent from the ledger's processed events (lost)")
        return heard, lost

    def _compare(self, expected: dict[str, tuple[Decimal, str]], actual: dict[str, tuple[Decimal, str]]) -> list[str]:
        out: list[str] = []
        for acc_id, (bal, statut) in sorted(expected.items()):
            got = actual.get(acc_id)
            if got is None:
                out.append(f"account {acc_id}: missing (expected balance {bal}, {statut})")
            elif got[0] != bal or got[1] != statut:
                out.append(f"account {acc_id}: expected {bal} {statut}, found {got[0]} {got[1]}")
        for acc_id in sorted(set(actual) - set(expected)):
            out.append(f"account {acc_id}: exists but its opening was never acknowledged")
        if len(out) > 50:
            out = [*out[:50], f"... and {len(out) - 50} more account differences"]
        return out


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
