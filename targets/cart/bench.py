"""Closed-loop capacity probe: how many requests/s the service answers, and client CPU per request.

`python -m targets.cart.bench --postgres DSN --redis URL [--workers 2] [--concurrency 64]`
starts a service (or uses --url), drives the shopper mix through CartDriver for --duration
seconds with N concurrent requests, and prints throughput, latency and CPU split. A capacity
probe, not a latency measurement (closed loop): use `edabench run` for latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

from harness.plugins import load_workload
from harness.protocol import DriverContext, Op
from targets.cart.driver import CartDriver

MIX = {"browse": 15, "view": 20, "summary": 10, "history": 3, "add": 30, "update": 12, "remove": 7, "clear": 3}


class _Null:
    def complete(self, *a: Any, **k: Any) -> None: ...
    def observe(self, *a: Any, **k: Any) -> None: ...
    def gauge(self, *a: Any, **k: Any) -> None: ...


def _cpu_of(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _listener(url: str) -> psutil.Process | None:
    """The process listening on the port of `url` (to account for PostgreSQL's and Redis's CPU)."""
    port = urlsplit(url).port
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    except psutil.AccessDenied:
        return None
    return None


@dataclass(slots=True)
class Phase:
    """What one measured window did: requests per actual op kind, CPU per process, latencies."""

    name: str
    elapsed: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(self.kinds.values())

    def per_request_us(self, who: str) -> float:
        return self.cpu.get(who, 0.0) / max(1, self.done) * 1e6


class Bench:
    def __init__(self, driver: CartDriver, workload: Any, procs: dict[str, psutil.Process | None]) -> None:
        self.driver = driver
        self.workload = workload
        self.procs = {n: p for n, p in procs.items() if p is not None}
        self.rng = random.Random(1)

    def _cpu(self) -> dict[str, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {"client": me.ru_utime + me.ru_stime, **{n: _cpu_of(p) for n, p in self.procs.items()}}

    async def run(self, name: str, mix: dict[str, int], duration: float, concurrency: int) -> Phase:
        """Closed loop: `concurrency` requests in flight for `duration` seconds, kinds drawn from `mix`."""
        kinds, weights = list(mix), list(mix.values())
        phase = Phase(name)
        stop_at = time.monotonic() + duration

        async def worker() -> None:
            while time.monotonic() < stop_at:
                kind, payload = self.workload.next_op(self.rng.choices(kinds, weights)[0])
                op = Op(str(phase.done), kind, payload)
                t0 = time.perf_counter()
                result = await self.driver.send(op)
                phase.latencies.append(time.perf_counter() - t0)
                self.workload.on_result(op, result.error)
                phase.kinds[kind] += 1
                if result.error is not None:
                    phase.errors[result.error] += 1

        before = self._cpu()
        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.elapsed = time.monotonic() - t0
        after = self._cpu()
        phase.cpu = {n: after[n] - before[n] for n in before}
        return phase


def _report(phase: Phase) -> None:
    done, elapsed, lat = phase.done, phase.elapsed, sorted(phase.latencies)
    errors = sum(phase.errors.values())
    print(f"requests      {done} in {elapsed:.1f}s = {done / elapsed:.0f} req/s, errors {errors} {dict(phase.errors)}")
    print(f"latency ms    p50 {lat[len(lat) // 2] * 1e3:.2f}  p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f}")
    for who in phase.cpu:
        share = phase.cpu[who] / elapsed * 100
        print(f"{who + ' CPU':<13} {phase.per_request_us(who):.0f} us/request ({share:.0f}% of a core)")


def _report_kinds(phases: list[Phase]) -> None:
    """One line per op kind: the phase that asked only for that kind (the workload turns an op it
    cannot make yet, e.g. a view of a cart with no item, into an add: `share` says how many were)."""
    whos = list(phases[0].cpu)
    print(f"{'kind':<9} {'share':>6} {'req/s':>7} {'p50 ms':>7} " + " ".join(f"{w + ' us':>12}" for w in whos))
    for ph in phases:
        share = ph.kinds[ph.name] / max(1, ph.done) * 100
        lat = sorted(ph.latencies)
        cols = " ".join(f"{ph.per_request_us(w):>12.0f}" for w in whos)
        print(f"{ph.name:<9} {share:>5.0f}% {ph.done / ph.elapsed:>7.0f} {lat[len(lat) // 2] * 1e3:>7.2f} {cols}")


async def main(args: argparse.Namespace) -> None:
    driver = CartDriver()
    options: dict[str, Any] = {
        "workers": args.workers,
        "connections": args.concurrency,
        "mode": args.mode,
        "client": args.client,
    }
    if args.server:
        os.environ["CART_HTTP_SERVER"] = args.server  # read by the service's --server default
    if args.url:
        options["url"] = args.url
    services = {"postgres": args.postgres, "redis": args.redis, **({"kafka": args.kafka} if args.kafka else {})}
    await driver.start(DriverContext(options=options, completions=_Null(), services=services))
    # the shopper mix of the `cart` workload, found by name as the harness finds it (a target never imports one)
    workload = load_workload("cart")({"sessions": args.sessions}, seed=1, process_index=0)
    service = psutil.Process(driver.service.proc.pid) if driver.service and driver.service.proc else None
    procs = {"service": service, **{n: _listener(u) for n, u in (("postgres", args.postgres), ("redis", args.redis))}}
    bench = Bench(driver, workload, procs)
    try:
        await bench.run("warmup", MIX, 2.0, args.concurrency)
        mixed = await bench.run("mix", MIX, args.duration, args.concurrency)
        phases = []
        if args.per_kind:
            for kind in MIX:
                phases.append(await bench.run(kind, {kind: 1}, args.per_kind, args.concurrency))
                await bench.run("mix", MIX, 1.0, args.concurrency)  # refill carts between phases
    finally:
        await driver.stop()
    _report(mixed)
    if phases:
        _report_kinds(phases)
    print(f"machine       {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--kafka", default=None)
    ap.add_argument("--url", default=None)
    ap.add_argument("--mode", default="sync")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--client", choices=("http1", "aiohttp"), default="http1")
    ap.add_argument("--per-kind", type=float, default=0.0, metavar="SECONDS", help="then each op kind alone")
    ap.add_argument("--server", default=None, help="HTTP server of the service (see service.py --server)")
    import uvloop

    uvloop.run(main(ap.parse_args()))
