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
from typing import Any
from urllib.parse import urlsplit

import psutil

from harness.protocol import DriverContext, Op
from targets.cart.driver import CartDriver
from workloads.cart.sessions import CartWorkload

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


async def main(args: argparse.Namespace) -> None:
    driver = CartDriver()
    options: dict[str, Any] = {
        "workers": args.workers,
        "connections": args.concurrency,
        "mode": args.mode,
        "client": args.client,
    }
    if args.url:
        options["url"] = args.url
    services = {"postgres": args.postgres, "redis": args.redis, **({"kafka": args.kafka} if args.kafka else {})}
    await driver.start(DriverContext(options=options, completions=_Null(), services=services))
    workload = CartWorkload({"sessions": args.sessions}, seed=1, process_index=0)
    kinds, weights = list(MIX), list(MIX.values())
    rng = random.Random(1)
    done = 0
    errors = 0
    lat: list[float] = []
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < stop_at:
            kind, payload = workload.next_op(rng.choices(kinds, weights)[0])
            op = Op(str(done), kind, payload)
            t0 = time.perf_counter()
            result = await driver.send(op)
            lat.append(time.perf_counter() - t0)
            workload.on_result(op, result.error)
            done += 1
            errors += result.error is not None

    service = psutil.Process(driver.service.proc.pid) if driver.service and driver.service.proc else None
    others = {name: _listener(url) for name, url in (("postgres", args.postgres), ("redis", args.redis))}
    try:
        stop_at = time.monotonic() + 2  # warm up
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        done, errors, lat[:] = 0, 0, []
        me = resource.getrusage(resource.RUSAGE_SELF)
        srv0 = _cpu_of(service) if service else 0.0
        other0 = {n: _cpu_of(p) for n, p in others.items() if p}
        t0 = time.monotonic()
        stop_at = t0 + args.duration
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - t0
        me2 = resource.getrusage(resource.RUSAGE_SELF)
        srv1 = _cpu_of(service) if service else 0.0
        other1 = {n: _cpu_of(p) for n, p in others.items() if p}
    finally:
        await driver.stop()
    client_cpu = (me2.ru_utime + me2.ru_stime) - (me.ru_utime + me.ru_stime)
    lat.sort()
    print(f"requests      {done} in {elapsed:.1f}s = {done / elapsed:.0f} req/s, errors {errors}")
    print(f"latency ms    p50 {lat[len(lat) // 2] * 1e3:.2f}  p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f}")
    print(f"client CPU    {client_cpu / done * 1e6:.0f} us/request ({client_cpu / elapsed * 100:.0f}% of a core)")
    if service:
        srv = srv1 - srv0
        print(f"service CPU   {srv / done * 1e6:.0f} us/request ({srv / elapsed * 100:.0f}% of a core, all workers)")
    for name, before in other0.items():
        used = other1[name] - before
        print(f"{name:<13} {used / done * 1e6:.0f} us/request ({used / elapsed * 100:.0f}% of a core)")
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
    import uvloop

    uvloop.run(main(ap.parse_args()))
