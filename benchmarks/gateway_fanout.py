"""CPU per delivered WebSocket message of the bank gateway's fan-out, and its delivery latency.

The gateway (the real ASGI app, hub and uvicorn server, in a process of its own) is fed bank
events through the streamer's own `publish` (Avro decode, JSON encode, queue per subscriber): only
the Kafka fetch is left out, so the figure is the hub's, not the broker client's. N subscribers
connect (N-1 byte-counting raw sockets, which cost the measurement next to nothing, and one
`Subscriber` that parses every message and records event -> delivery latency: the op id header
carries the event's monotonic send instant, and CLOCK_MONOTONIC is one clock for the host).

For each N the feed runs at a constant rate; the gateway process's CPU (psutil) is read before
the feed and after every subscriber has received every event. Reported per N: CPU per event, CPU
per delivered message, and the marginal cost of one more delivery (the slope between the two
largest N), plus the latency p50/p99/max at the probe. A step with N = 0 measures the feeder and
the idle server, which the per-delivery figures subtract. `--parsing N` adds a step where all N
subscribers are `Subscriber`s, for the client side's CPU per message (what a driver pays);
`--max-rate` one that feeds as fast as the gateway goes.

    python -m benchmarks.gateway_fanout [--subscribers 0,1,10,100] [--rate 1000] [--seconds 10]
                                        [--parsing 20] [--max-rate] [--out fanout.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import psutil
import uvicorn
from aiokafka import TopicPartition
from hdrh.histogram import HdrHistogram

from benchmarks.common import cpu_seconds, machine, self_cpu, table, write_json
from targets.bank.avro import Decoder, Encoder
from targets.bank.gateway.app import Gateway
from targets.bank.gateway.hub import Hub
from targets.bank.gateway.server import _Server
from targets.bank.gateway.streamer import KafkaStreamer
from targets.bank.gateway.subscriber import Subscriber
from targets.bank.gateway.web import Cors
from targets.bank.procs import free_port
from targets.bank.topics import EVENT_TOPICS, H_OP_ID, H_ORIGIN, SEED

TOPIC = EVENT_TOPICS["DepotEffectue"]


# ---- the gateway process ---------------------------------------------------------------------------
class MemoryRegistry:
    """The registry contract in memory: the benchmark measures the hub, not PostgreSQL."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}

    async def register(self, subject: str, schema: str) -> int:
        for sid, text in self.schemas.items():
            if text == schema:
                return sid
        sid = len(self.schemas) + 1
        self.schemas[sid] = schema
        return sid

    async def get(self, schema_id: int) -> str | None:
        return self.schemas.get(schema_id)

    async def close(self) -> None:
        return None


class Record:
    """What the streamer reads of an aiokafka ConsumerRecord."""

    __slots__ = ("headers", "offset", "timestamp", "value")

    def __init__(self, offset: int, value: bytes, headers: list[tuple[str, bytes]], timestamp: int) -> None:
        self.offset, self.value, self.headers, self.timestamp = offset, value, headers, timestamp


async def _values(n: int) -> tuple[list[bytes], Decoder]:
    registry = MemoryRegistry()
    encoder = Encoder(registry, SEED)  # type: ignore[arg-type]
    await encoder.register_all()
    values = [encoder.encode("DepotEffectue", {
        "event_id": str(uuid.uuid4()), "timestamp": int(time.time() * 1000), "compte_id": f"C{i:08d}",
        "montant": Decimal("12.34"), "devise": "EUR", "reference": f"REF-{i}", "canal": "CARTE",
        "metadata": {"iban": "FR1420041010050500013M02606"}}) for i in range(n)]
    return values, Decoder(registry)  # type: ignore[arg-type]


async def feed(streamer: KafkaStreamer, values: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Events at `rate` for `seconds` (rate 0: as fast as the loop goes, `seconds` long), through the
    streamer's publish path; the op id header is the event's monotonic send instant."""
    tp = TopicPartition(TOPIC, 0)
    origin = (H_ORIGIN, b"bench/0")
    start = time.monotonic_ns()
    end = start + int(seconds * 1e9)
    sent = 0
    while True:
        now = time.monotonic_ns()
        if now >= end:
            break
        due = (int((now - start) / 1e9 * rate) - sent) if rate else 200
        if due > 0:
            ts = time.time_ns() // 1_000_000
            batch = [Record(sent + i, values[(sent + i) % len(values)], [(H_OP_ID, str(now).encode()), origin], ts)
                     for i in range(due)]
            sent += due
            await streamer.publish({tp: batch})
        await asyncio.sleep(0.001 if rate else 0)
    return {"events": sent, "wall_s": (time.monotonic_ns() - start) / 1e9}


async def serve(port: int, queue: int) -> None:
    hub = Hub(EVENT_TOPICS.values(), queue_limit=queue)
    values, decoder = await _values(1000)
    streamer = KafkaStreamer("unused:0", SEED, hub, decoder)
    gateway = Gateway(hub, None, None, Cors(["*"]), access_log=False)
    wire = [0]  # bytes on the wire of one subscriber of the topic (a frame header is 2, 4 or 10 bytes)
    fan_out = hub.broadcast_to_topic

    def counted(topic: str, text: str) -> int:
        n = len(text.encode())
        wire[0] += n + (2 if n < 126 else 4 if n < 65536 else 10)
        return fan_out(topic, text)

    hub.broadcast_to_topic = counted  # type: ignore[method-assign]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/feed":
            body = await receive()
            req = orjson.loads(body.get("body") or b"{}")
            out = await feed(streamer, values, float(req["rate"]), float(req["seconds"]))
            data = orjson.dumps(out)
        elif scope["type"] == "http" and scope["path"] == "/bench/stats":
            data = orjson.dumps({**hub.stats.as_dict(), "clients": len(hub.clients), "wire_bytes": wire[0]})
        else:
            await gateway(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})

    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                    access_log=False, ws="websockets-sansio", ws_per_message_deflate=False,
                                    timeout_keep_alive=600))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "should_exit", True))
    await server.serve()


# ---- the subscribers ---------------------------------------------------------------------------------
def _frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455 5.3: a client masks; the mask may be any 4 bytes)."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else bytes([0x81, 0xFE]) + len(data).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class CountingClient(asyncio.Protocol):
    """Handshake, subscribe, then count bytes: next to no CPU per message on the reading side (every
    subscriber of one topic gets the same frames, so the probe's byte count says when all arrived)."""

    def __init__(self, host: str, topics: list[str]) -> None:
        self.host = host
        self.topics = topics
        self.head = bytearray()
        self.upgraded = False
        self.bytes = 0
        self.subscribed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.transport.write((f"GET /ws HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            self.bytes += len(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        if not self.head.startswith(b"HTTP/1.1 101"):
            self.subscribed.set_exception(RuntimeError(bytes(self.head[:200]).decode("latin-1")))
            return
        self.upgraded = True
        self.bytes = len(self.head) - end - 4
        assert self.transport is not None
        self.transport.write(_frame(orjson.dumps({"action": "subscribe", "topics": self.topics}).decode()))
        self.subscribed.set_result(None)


async def _wait(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s}s: {what}")
        await asyncio.sleep(0.01)


async def step(port: int, proc: psutil.Process, n: int, rate: float, seconds: float,
               parsing: bool = False) -> dict[str, Any]:
    """One feed to n subscribers. `parsing`: all n are `Subscriber`s (JSON parsed, a callback per
    event), to measure the subscriber side; else one is and n - 1 count bytes."""
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    counters: list[CountingClient] = []
    for _ in range(0 if parsing else max(0, n - 1)):
        _, c = await loop.create_connection(lambda: CountingClient(f"127.0.0.1:{port}", [TOPIC]), "127.0.0.1", port)
        await asyncio.wait_for(c.subscribed, 10)
        await _wait(lambda c=c: c.bytes > 0, 10, "the subscription's status reply")
        counters.append(c)
    latency = HdrHistogram(1, 60_000_000, 3)
    start_bytes = {id(c): c.bytes for c in counters}

    def on_event(topic: str, op_id: int | None, origin: str | None, payload: dict[str, Any]) -> None:
        if op_id is not None:
            latency.record_value(max(1, (time.monotonic_ns() - op_id) // 1000))

    subs: list[Subscriber] = []
    for i in range(n if parsing else min(n, 1)):
        sub = Subscriber(f"ws://127.0.0.1:{port}/ws", [TOPIC], on_event if i == 0 else lambda *e: None,
                         name=f"subscriber-{i}")
        await sub.connect()
        subs.append(sub)
    tasks = [asyncio.create_task(sub.run()) for sub in subs]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds + 600)) as http:
        async with http.get(url + "/bench/stats") as r:
            before = await r.json()
        cpu0, own0 = cpu_seconds(proc), self_cpu()
        t0 = time.monotonic()
        async with http.post(url + "/bench/feed", json={"rate": rate, "seconds": seconds}) as r:
            fed = await r.json()
        events = fed["events"]
        await _wait(lambda: all(sub.received >= events for sub in subs), 60 + seconds,
                    "the subscribers received every event")
        async with http.get(url + "/bench/stats") as r:
            wire = (await r.json())["wire_bytes"] - before["wire_bytes"]  # of one subscriber
        await _wait(lambda: all(c.bytes - start_bytes[id(c)] >= wire for c in counters), 60 + seconds,
                    "every subscriber received every event")
        wall = time.monotonic() - t0
        cpu, own = cpu_seconds(proc) - cpu0, self_cpu() - own0
        async with http.get(url + "/bench/stats") as r:
            after = await r.json()
    delivered = after["delivered"] - before["delivered"]
    dropped = sum(after["dropped"].values()) - sum(before["dropped"].values())
    for c in counters:
        assert c.transport is not None
        c.transport.close()
    for sub, task in zip(subs, tasks, strict=True):
        await sub.close()
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    received = sum(sub.received for sub in subs)
    return {
        "subscribers": n, "parsing": parsing, "rate": rate, "events": events, "delivered": delivered,
        "dropped": dropped, "feed_s": fed["wall_s"], "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "event_rate": round(events / fed["wall_s"], 1), "deliveries_per_s": round(delivered / wall, 1),
        "cpu_share": round(cpu / wall, 3),
        # the subscriber side: only meaningful when every subscriber parses
        "client_cpu_us_per_message": round(own / received * 1e6, 2) if parsing and received else None,
        "latency_us": {"p50": latency.get_value_at_percentile(50), "p99": latency.get_value_at_percentile(99),
                       "max": latency.get_max_value()} if n else None,
    }


def derive(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-event and per-delivery CPU, net of the idle feeder (the N = 0 step)."""
    idle = next((s["cpu_s"] / s["wall_s"] for s in steps if s["subscribers"] == 0), 0.0)
    for s in steps:
        net = max(0.0, s["cpu_s"] - idle * s["wall_s"])
        s["cpu_us_per_event"] = round(net / s["events"] * 1e6, 2) if s["events"] else None
        s["cpu_us_per_delivery"] = round(net / s["delivered"] * 1e6, 2) if s["delivered"] else None
    with_subs = sorted((s for s in steps if s["subscribers"] > 0 and s["delivered"]), key=lambda s: s["subscribers"])
    out: dict[str, Any] = {"idle_cpu_share": round(idle, 4)}
    if len(with_subs) >= 2:
        a, b = with_subs[-2], with_subs[-1]
        per_event_a = a["cpu_s"] / a["events"]
        per_event_b = b["cpu_s"] / b["events"]
        deliveries_a = a["delivered"] / a["events"]
        deliveries_b = b["delivered"] / b["events"]
        if deliveries_b > deliveries_a:
            out["marginal_cpu_us_per_delivery"] = round((per_event_b - per_event_a) / (deliveries_b - deliveries_a)
                                                        * 1e6, 2)
            out["marginal_between"] = [a["subscribers"], b["subscribers"]]
    return out


def _spawn_gateway(port: int, queue: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.gateway_fanout", "--serve", str(port), "--queue",
                             str(queue)])


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    child = _spawn_gateway(port, args.queue)
    try:
        proc = psutil.Process(child.pid)
        async with aiohttp.ClientSession() as http:
            async def up() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/bench/stats") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            deadline = time.monotonic() + 30
            while not await up():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway process did not start")
                await asyncio.sleep(0.05)
        steps = []
        for n in args.subscribers:
            s = await step(port, proc, n, args.rate, args.seconds)
            steps.append(s)
            print(f"  {n:>4} subscribers: {s['events']} events, {s['delivered']} delivered, cpu {s['cpu_s']} s",
                  file=sys.stderr)
        derived = derive(steps)
        peak = parsing = None
        if args.max_rate:
            peak = await step(port, proc, max(args.subscribers), 0, args.seconds)
        if args.parsing:
            parsing = await step(port, proc, args.parsing, args.rate, args.seconds, parsing=True)
        return {"machine": machine(), "rate": args.rate, "seconds": args.seconds, "queue": args.queue,
                "steps": steps, **derived, "max_rate": peak, "parsing_subscribers": parsing}
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gateway_fanout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", default="0,1,10,100", help="subscriber counts, one step each")
    p.add_argument("--rate", type=float, default=1000.0, help="events per second of each step")
    p.add_argument("--seconds", type=float, default=10.0, help="feed length of each step")
    p.add_argument("--queue", type=int, default=100_000, help="the per-client queue (high: measure, not drop)")
    p.add_argument("--max-rate", action="store_true", help="also feed as fast as possible to the largest N")
    p.add_argument("--parsing", type=int, default=0, metavar="N",
                   help="also a step with N parsing Subscribers, for the subscriber side's CPU per message")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # the gateway process
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.queue))
        return 0
    args.subscribers = [int(x) for x in args.subscribers.split(",") if x.strip()]
    result = asyncio.run(bench(args))
    rows = [[s["subscribers"], s["events"], s["delivered"], s["event_rate"], s["deliveries_per_s"], s["cpu_share"],
             s["cpu_us_per_event"], s["cpu_us_per_delivery"],
             (s["latency_us"] or {}).get("p50"), (s["latency_us"] or {}).get("p99")] for s in result["steps"]]
    print(table(["subscribers", "events", "delivered", "events/s", "deliveries/s", "gateway CPU", "us CPU/event",
                 "us CPU/delivery", "latency p50 us", "latency p99 us"], rows))
    print(f"idle feeder + server: {result['idle_cpu_share']:.3f} of a core (subtracted)")
    if "marginal_cpu_us_per_delivery" in result:
        a, b = result["marginal_between"]
        print(f"marginal CPU per delivered message ({a} -> {b} subscribers): "
              f"{result['marginal_cpu_us_per_delivery']} us")
    if result["max_rate"]:
        m = result["max_rate"]
        print(f"as fast as possible to {m['subscribers']} subscribers: {m['deliveries_per_s']:,.0f} deliveries/s "
              f"({m['event_rate']:,.0f} events/s) at {m['cpu_share']:.2f} of a core")
    if result["parsing_subscribers"]:
        m = result["parsing_subscribers"]
        print(f"{m['subscribers']} parsing Subscribers at {m['event_rate']:,.0f} events/s: "
              f"{m['client_cpu_us_per_message']} us of their CPU per message, latency p50 "
              f"{m['latency_us']['p50']} us, p99 {m['latency_us']['p99']} us")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
