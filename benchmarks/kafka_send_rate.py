"""Max open-loop send rate of one generator process against the embedded broker, as a ratio to librdkafka.

Every measurement runs on a fresh embedded broker (in-memory Tansu) of its own: the anchors, and
each step of the generator. That broker keeps every record in memory and slows down as it fills
(its CPU per record doubled over one search on a shared broker), so a shared one would measure
the broker's history. With ``--kafka`` every measurement uses that broker instead.

1. anchor: a bare confluent-kafka ``Producer`` (librdkafka, ``enable.idempotence=false``, ``acks=1``)
   produces 200-byte records as fast as it can for ``--anchor-s`` seconds, then flushes;
   rate = acknowledged records / (first produce .. flush done). A second, informative anchor does
   the same with one aiokafka coroutine awaiting ``send`` in turn (the client the drivers use);
2. generator: ``harness.engine.runner.execute`` with one generator process of its own (as
   ``edabench run`` does) and a produce-only driver (``benchmarks/produce_driver.py``: one 200-byte
   record per op through the harness's librdkafka transport, done on the broker's ack), at a
   constant rate stepped up by ``--factor`` until a step fails, then bisected ``--refine`` times.
   A step passes when, in its measured window, the sent and acknowledged rates are >= 95% of the
   target, nothing failed, and the schedule-lag p99 is <= 10 ms. Max = the highest passing rate;
   CPU per record is the generator process's own CPU time (FinalReport.cpu_s), all its threads;
3. schedule lag at 80% of that max: one longer run; ``summary["schedule_lag_us"]``.

Step 2-3 run for two drivers: ``produce`` (the librdkafka transport) and ``null`` (README's
example driver with no I/O: the harness's own ceiling). Medians over rounds are reported, with
the ratio max / librdkafka rate per round.

    python -m benchmarks.kafka_send_rate --out kafka.json [--rounds 3] [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import (
    ACHIEVED_SHARE,
    LAG_P99_LIMIT_US,
    Step,
    Timer,
    cpu_seconds,
    find_max_rate,
    machine,
    median,
    ratio,
    step_from_outcome,
    table,
    write_json,
)
from benchmarks.produce_driver import NULL_TARGET, TARGET, TOPIC, create_topic
from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.spec import parse_spec

RECORD_BYTES = 200
SETTLE_S = 2.0


@dataclass(frozen=True)
class Variant:
    """A driver under the generator: what it isolates is in its name."""

    name: str
    target: str
    options: dict[str, Any]
    start_rate: float


VARIANTS = (
    # one record per op through harness.transports.kafka (librdkafka), completed on the broker's ack
    Variant("produce", TARGET, {}, 50_000.0),
    # no I/O at all: the harness's own ceiling
    Variant("null", NULL_TARGET, {}, 100_000.0),
)


@dataclass
class Config:
    rounds: int = 3
    anchor_s: float = 3.0
    partitions: int = 2
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)
    start_rate: float | None = None  # None: each variant's own start
    factor: float = 1.4
    refine: int = 2
    ceiling: float = 2_000_000.0
    step_warmup_s: int = 1
    step_duration_s: int = 4
    lag_warmup_s: int = 1
    lag_duration_s: int = 10
    lag_share: float = 0.8

    @classmethod
    def tiny(cls) -> Config:
        """A few seconds in all: for the smoke test, not for numbers."""
        return cls(rounds=1, anchor_s=0.5, start_rate=1000.0, factor=2.0, refine=0, ceiling=1000.0,
                   step_warmup_s=0, step_duration_s=1, lag_warmup_s=0, lag_duration_s=1)


def librdkafka_rate(bootstrap: str, topic: str, seconds: float, broker_pid: int | None = None) -> dict[str, Any]:
    """Produce 200-byte records flat out for `seconds`, flush; rate and CPU per acknowledged record."""
    from confluent_kafka import KafkaException, Producer

    errors: list[str] = []  # failed deliveries
    client_errors: list[str] = []  # connection-level errors reported by the client

    def on_delivery(err: Any, _msg: Any) -> None:
        errors.append(str(err))

    def on_error(err: Any) -> None:
        client_errors.append(str(err))

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "acks": 1,
        "delivery.report.only.error": True,
        "on_delivery": on_delivery,
        "error_cb": on_error,
    })
    value = b"x" * RECORD_BYTES
    producer.produce(topic, value)
    if producer.flush(30) != 0:
        raise KafkaException("librdkafka anchor: the warm-up record was not acknowledged")
    produce, poll = producer.produce, producer.poll
    broker = psutil.Process(broker_pid) if broker_pid else None
    b0 = cpu_seconds(broker) if broker else 0.0
    sent = 0
    with Timer() as t:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                try:
                    produce(topic, value)
                except BufferError:
                    poll(0.0005)
                    continue
                sent += 1
            poll(0)
        left = producer.flush(60)
    acked = sent - left - len(errors)
    return {
        "records": acked,
        "seconds": round(t.wall, 3),
        "rate": acked / t.wall,
        "cpu_s": round(t.cpu, 3),
        "cpu_us_per_record": t.cpu / acked * 1e6 if acked else None,
        "broker_cpu_us_per_record": (cpu_seconds(broker) - b0) / acked * 1e6 if broker and acked else None,
        "delivery_errors": len(errors),
        "errors": (errors + client_errors)[:5],
    }


async def aiokafka_rate(bootstrap: str, topic: str, seconds: float) -> dict[str, Any]:
    """Second anchor: one coroutine awaiting ``AIOKafkaProducer.send`` in turn (same client as the drivers)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=0, acks=1)
    await producer.start()
    try:
        value = b"x" * RECORD_BYTES
        await (await producer.send(topic, value))
        send = producer.send
        sent = 0
        with Timer() as t:
            deadline = time.perf_counter() + seconds
            last = None
            while time.perf_counter() < deadline:
                for _ in range(100):
                    last = await send(topic, value)
                sent += 100
            await producer.flush()
            if last is not None:
                await last
    finally:
        await producer.stop()
    return {
        "records": sent,
        "seconds": round(t.wall, 3),
        "rate": sent / t.wall,
        "cpu_s": round(t.cpu, 3),
        "cpu_us_per_record": t.cpu / sent * 1e6 if sent else None,
    }


async def generator_step(bootstrap: str, variant: Variant, rate: float, warmup_s: int, duration_s: int,
                         runs_root: Path, topic: str = TOPIC, broker_pid: int | None = None) -> Step:
    """One open-loop run of the harness (one process) at `rate` records/s through `variant`'s driver."""
    spec = parse_spec({
        "name": f"bench-kafka-{variant.name}-{int(rate)}",
        "target": variant.target,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "timeout_s": 2,
        "drain_timeout_s": 2,
        "processes": 1,
        "rate": {"rate": rate},
        "ops": [{"name": "produce"}],
        "target_options": {"topic": topic, "record_bytes": RECORD_BYTES, **variant.options},
    })
    services = {"kafka": bootstrap} if variant.target == TARGET else {}
    broker = psutil.Process(broker_pid) if broker_pid and services else None
    b0 = cpu_seconds(broker) if broker else 0.0
    outcome = await execute(make_plan(spec), RunOptions(runs_root=runs_root, services=services, isolate=True,
                                                        command=["benchmarks.kafka_send_rate"]))
    step = step_from_outcome(rate, outcome, outcome.summary["generator"]["cpu_s"], warmup_s, duration_s,
                             run_dir=str(outcome.run_dir))
    if broker is not None and step.ops_total:
        step.extra["broker_cpu_us_per_record"] = (cpu_seconds(broker) - b0) / step.ops_total * 1e6
    if not step.passed:
        await asyncio.sleep(SETTLE_S)  # let the broker and the machine settle after an overload
    return step


@contextlib.asynccontextmanager
async def _broker(kafka: str | None, run_dir: Path) -> AsyncIterator[tuple[str, int | None]]:
    if kafka:
        yield kafka, None
        return
    from infra.stack import Stack

    async with Stack(needs={"kafka"}, run_dir=run_dir, use_env=False, reuse=False, timeout=60) as stack:
        yield stack.urls["kafka"], stack.pids.get("tansu")


async def fresh_step(kafka: str | None, work: Path, variant: Variant, rate: float, warmup_s: int,
                     duration_s: int, runs: Path, partitions: int) -> Step:
    """One generator step on a broker of its own: the embedded broker keeps every record in memory and
    gets slower as it fills (its CPU per record doubled over one search), so a step after an
    overloaded one would otherwise measure the broker's history."""
    if variant.target != TARGET:
        return await generator_step("", variant, rate, warmup_s, duration_s, runs)
    async with _broker(kafka, work / f"broker-{variant.name}-{int(rate)}-{time.monotonic_ns()}") as (bootstrap, pid):
        topic = f"{TOPIC}.{variant.name}.{time.monotonic_ns()}"
        await create_topic(bootstrap, topic, partitions)
        return await generator_step(bootstrap, variant, rate, warmup_s, duration_s, runs, topic, pid)


async def search(cfg: Config, variant: Variant, kafka: str | None, work: Path, runs: Path, index: int,
                 log: Any) -> dict[str, Any]:
    """Max rate of the generator through one driver variant, then the schedule lag at 80% of it."""

    async def step(rate: float) -> Step:
        s = await fresh_step(kafka, work, variant, rate, cfg.step_warmup_s, cfg.step_duration_s, runs,
                             cfg.partitions)
        log(f"round {index} {variant.name}: step {rate:,.0f}/s: sent {s.sent_rate:,.0f}/s, "
            f"acked {s.ok_rate:,.0f}/s, lag p99 {s.lag_p99_us} us, {'pass' if s.passed else 'FAIL'}")
        return s

    start = cfg.start_rate or variant.start_rate
    best, steps = await find_max_rate(step, start, cfg.factor, cfg.refine, cfg.ceiling)
    lag_step = None
    if best:
        lag_rate = round(best * cfg.lag_share, -1) or best * cfg.lag_share
        lag_step = await fresh_step(kafka, work, variant, lag_rate, cfg.lag_warmup_s, cfg.lag_duration_s, runs,
                                    cfg.partitions)
        lag = lag_step.extra["summary_schedule_lag_us"]
        log(f"round {index} {variant.name}: at {lag_rate:,.0f}/s schedule lag p99 {lag.get('p99')} us (summary)")
    max_step = next((s for s in steps if s.rate == best), None)
    return {
        "max_rate": best,
        "cpu_us_per_record_at_max": max_step.cpu_us_per_op if max_step else None,
        "steps": [s.as_dict() for s in steps],
        "lag_run": lag_step.as_dict() if lag_step else None,
    }


async def one_round(cfg: Config, kafka: str | None, work: Path, index: int,
                    log: Any = print) -> dict[str, Any]:
    async with _broker(kafka, work / f"broker-{index}") as (bootstrap, broker_pid):
        anchor_topic = f"bench.anchor.{index}.{time.monotonic_ns()}"
        await create_topic(bootstrap, anchor_topic, cfg.partitions)
        anchor = await asyncio.to_thread(librdkafka_rate, bootstrap, anchor_topic, cfg.anchor_s, broker_pid)
        log(f"round {index}: librdkafka {anchor['rate']:,.0f} records/s")
    async with _broker(kafka, work / f"broker-{index}-aiokafka") as (bootstrap, _):
        await create_topic(bootstrap, anchor_topic, cfg.partitions)
        aio = await aiokafka_rate(bootstrap, anchor_topic, cfg.anchor_s)
        log(f"round {index}: aiokafka sequential {aio['rate']:,.0f} records/s")
    runs = work / f"runs-{index}"
    variants = {v.name: await search(cfg, v, kafka, work, runs, index, log)
                for v in VARIANTS if v.name in cfg.variants}
    for v in variants.values():
        v["ratio_to_librdkafka"] = ratio(v["max_rate"], anchor["rate"])
        v["ratio_to_aiokafka"] = ratio(v["max_rate"], aio["rate"])
    return {"round": index, "librdkafka": anchor, "aiokafka": aio, "variants": variants}


def _lag(v: dict[str, Any], key: str) -> Any:
    return v["lag_run"]["extra"]["summary_schedule_lag_us"].get(key) if v["lag_run"] else None


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "librdkafka_rate": median([r["librdkafka"]["rate"] for r in rounds]),
        "librdkafka_cpu_us_per_record": median([r["librdkafka"]["cpu_us_per_record"] for r in rounds]),
        "aiokafka_rate": median([r["aiokafka"]["rate"] for r in rounds]),
        "aiokafka_cpu_us_per_record": median([r["aiokafka"]["cpu_us_per_record"] for r in rounds]),
        "variants": {},
    }
    for name in rounds[0]["variants"]:
        vs = [r["variants"][name] for r in rounds]
        out["variants"][name] = {
            "max_rate": median([v["max_rate"] for v in vs]),
            "cpu_us_per_record_at_max": median([v["cpu_us_per_record_at_max"] for v in vs]),
            "ratio_to_librdkafka": median([v["ratio_to_librdkafka"] for v in vs]),
            "ratio_to_aiokafka": median([v["ratio_to_aiokafka"] for v in vs]),
            "lag_rate": median([v["lag_run"]["rate"] if v["lag_run"] else None for v in vs]),
            "lag_p50_us": median([_lag(v, "p50") for v in vs]),
            "lag_p99_us": median([_lag(v, "p99") for v in vs]),
            "lag_p99_9_us": median([_lag(v, "p99_9") for v in vs]),
            "lag_max_us": median([_lag(v, "max") for v in vs]),
            "lag_run_cpu_us_per_record": median([v["lag_run"]["cpu_us_per_op"] if v["lag_run"] else None
                                                 for v in vs]),
        }
    return out


async def bench(cfg: Config, kafka: str | None = None, work: Path | None = None, log: Any = print
                ) -> dict[str, Any]:
    """The whole comparison; returns the JSON-able result (rounds and medians)."""
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-kafka-")))
        before = machine()
        rounds = [await one_round(cfg, kafka, work, i, log) for i in range(cfg.rounds)]
    return {
        "benchmark": "kafka_send_rate",
        "record_bytes": RECORD_BYTES,
        "definition": {
            "max_rate": f"highest stepped rate with sent and acked >= {ACHIEVED_SHARE:.0%} of target in the measured "
                        f"window, no failures and schedule-lag p99 (measured window) <= "
                        f"{LAG_P99_LIMIT_US // 1000} ms",
            "lag": f"summary['schedule_lag_us'] of a {cfg.lag_duration_s}s run at {cfg.lag_share:.0%} of the max",
            "variants": {"produce": "one record per op through the librdkafka transport, done on the ack",
                         "null": "README's example driver with no I/O: the harness's own ceiling"},
        },
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()},
        "broker": kafka or "embedded tansu (fresh per round)",
        "machine_before": before,
        "machine_after": machine(),
        "rounds": rounds,
        "median": aggregate(rounds),
    }


def render(result: dict[str, Any]) -> str:
    m = result["median"]
    rows = [
        ["librdkafka Producer (anchor)", m["librdkafka_rate"], m["librdkafka_cpu_us_per_record"], 1.0, None,
         None, None],
        ["aiokafka sequential loop", m["aiokafka_rate"], m["aiokafka_cpu_us_per_record"],
         ratio(m["aiokafka_rate"], m["librdkafka_rate"]), None, None, None],
    ]
    for name, v in m["variants"].items():
        rows.append([f"edabench 1 process, driver {name}", v["max_rate"], v["cpu_us_per_record_at_max"],
                     v["ratio_to_librdkafka"], v["lag_rate"], v["lag_p50_us"], v["lag_p99_us"]])
    headers = ["sender (median of rounds)", "max rec/s", "CPU us/rec", "ratio to librdkafka", "lag run rec/s",
               "lag p50 us", "lag p99 us"]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    p.add_argument("--kafka", default=None, help="use this broker instead of a fresh embedded one per round")
    p.add_argument("--rounds", type=int, default=Config.rounds)
    p.add_argument("--variants", default=",".join(Config.variants),
                   help="comma-separated drivers under the generator: produce, null")
    p.add_argument("--anchor-s", type=float, default=Config.anchor_s)
    p.add_argument("--start-rate", type=float, default=Config.start_rate)
    p.add_argument("--factor", type=float, default=Config.factor)
    p.add_argument("--refine", type=int, default=Config.refine)
    p.add_argument("--step-s", type=int, default=Config.step_duration_s)
    p.add_argument("--lag-s", type=int, default=Config.lag_duration_s)
    p.add_argument("--work", default=None, help="keep run directories here (default: a temporary directory)")
    a = p.parse_args(argv)
    cfg = Config(rounds=a.rounds, variants=tuple(a.variants.split(",")), anchor_s=a.anchor_s,
                 start_rate=a.start_rate, factor=a.factor, refine=a.refine, step_duration_s=a.step_s,
                 lag_duration_s=a.lag_s)
    work = Path(a.work) if a.work else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    result = run(bench(cfg, a.kafka, work))
    print(render(result))
    if a.out:
        write_json(a.out, result)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
