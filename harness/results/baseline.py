"""Statistical baseline comparison: is the current run worse than its baseline run(s)?

A run-level percentile compared with a fixed tolerance cries wolf: a p99 estimated from a few hundred
samples moves by more than 10% between two runs of the same build (issue 11: +12%, 0.75 ms). Here a
latency metric (p50, p99, p99.9; overall and per op kind) is a regression only when all of this holds:

1. **The current run's seconds are generally slower.** Each run is cut into windows of consecutive
   post-warm-up 1 s intervals (the `.hlog` interval histograms), a window being the shortest run of
   intervals holding at least ``max(min_samples_per_interval, 1 / (1 - q))`` samples, so that a window's
   quantile ``q`` is an estimate and not its maximum (p50: 20 samples, p99: 100, p99.9: 1,000; at
   200 ops/s a p50 or p99 window is one second). The current run's window quantiles are tested against
   the pooled windows of all baseline runs with a one-sided Mann-Whitney U test (normal approximation,
   tie and continuity corrections). A rank test because window percentiles are skewed and heavy-tailed:
   two busy seconds of the machine are outliers, not a shift, and a rank test asks whether the current
   windows are *generally* higher, which is what a slower build does. It is deterministic (no
   resampling seed: the same runs always get the same verdict) and needs no scipy.
2. **Beyond the run-to-run spread** (with 3 or more baseline runs). The seconds of one run share that
   run's machine (other processes, CPU frequency, caches), so two runs of one build differ by more than
   their seconds suggest; the U test alone treats that as significant. Each run's location is the
   median of its log window quantiles; the current location is tested against the baseline runs'
   locations with a one-sided prediction-interval t test (k - 1 degrees of freedom; the spread is at
   least the within-run error of a median and the histograms' 0.1% resolution). Measured on 20
   back-to-back 10 s echo runs on a loaded 2-core machine: the U test alone flagged a run whose p99 was
   3x (two busy seconds, the rest +15%) with p = 0.008; the run-level test gave it p = 0.05.
   Both tests must reject (an intersection-union test, so its level stays ``alpha``); the reported
   p-value is the larger of the two. With fewer baseline runs the spread cannot be estimated and the
   detail says so: the practical thresholds below then carry the weight.
3. **A practical effect.** The run-level value (summary.json's percentile, the number reports and the
   SLO gate show; for several baselines the median of theirs) is worse by more than ``tolerance``
   (relative) *and* by more than ``floor_ms`` (absolute): a 0.75 ms move never fails a build.

Alternatives rejected, from the same measurements: a bootstrap of the run-level percentile over interval
histograms resamples the seconds of each run, so it misses the run-to-run spread just as the U test
does, costs thousands of histogram merges per metric and depends on a seed; inflating the U test's
variance by a design effect from the intraclass correlation of ranks (the clustered rank-sum test) is
blind to magnitude: runs whose p50 differ by 0.3 ms are as separated in ranks as a 5 ms slowdown, and
a 50% slower echo service was not detected against 3 baselines (p = 0.026).

Too little data is "not compared", never a regression: fewer than ``min_intervals`` windows on either
side (e.g. a p99.9 over 10 s at 200 ops/s: 2,000 samples make at most 2 windows of 1,000). Rates have no
interval test: an achieved rate more than ``tolerance`` below the baseline's, or an error rate higher by
more than ``max(tolerance * baseline, 0.001)``, is a regression (open-loop arrivals make the achieved
rate near-deterministic; error counts are small).

Runs of different workloads, targets, rate profiles, durations, warm-ups, op kinds or loop modes are
refused (`Incomparable`, naming the field) unless ``force=True``; differences that are allowed
(generator processes, timeout, op weights, target and workload options) are compared anyway and
reported first, as note rows (``regression=False``, ``metric`` = the field, ``unit`` = ""); so is a run
whose generator fell behind its schedule (summary.json ``generator.kept_up`` false, metric
``generator_kept_up``): its latencies include the generator's own delay.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

#: compared latency metrics: name -> (summary.json key, percentile)
LATENCIES: dict[str, tuple[str, float]] = {"p50_ms": ("p50", 50.0), "p99_ms": ("p99", 99.0),
                                           "p99_9_ms": ("p99_9", 99.9)}
#: an error rate within this absolute rise of the baseline's is noise whatever the ratio (1 in 1,000 ops)
ERROR_RATE_FLOOR = 0.001
#: relative resolution of the histograms (3 significant digits): closer values are not told apart
RESOLUTION = 1e-3
#: baseline runs (each with enough windows) needed to estimate the run-to-run spread
MIN_RUNS_FOR_SPREAD = 3
#: identity fields that must be equal unless forced
MUST_MATCH = ("workload", "generator", "target", "closed_loop", "rate.profile", "rate.rate", "rate.end_rate",
              "rate.steps", "rate.burst_ops", "rate.burst_every_s", "rate.poisson", "duration_s", "warmup_s",
              "op_kinds")
#: identity fields that may differ: compared anyway, the difference is reported
NOTED = ("processes", "timeout_s", "op_weights", "target_options", "workload_options")


@dataclass(frozen=True)
class Comparison:
    op: str  # "overall" or an op kind
    metric: str  # "p50_ms", "p99_ms", "p99_9_ms", "achieved_rate", "error_rate"; or an identity field (a note)
    baseline: float | None  # the baseline's value (median over baseline runs when several)
    current: float | None
    ratio: float | None  # current / baseline
    p_value: float | None  # of the one-sided test "current is worse", None when not tested
    regression: bool
    unit: str  # "ms", "ops/s", "ratio" ("" for notes)
    detail: str  # one readable sentence: why it is or is not a regression


class Incomparable(ValueError):
    """The runs measured different things; the message says which field differs."""


# -- run identity ---------------------------------------------------------------------------------


def _load_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (is {path.parent} a run directory?)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def identity(run_dir: Path) -> dict[str, Any]:
    """What a run measured: the fields of `MUST_MATCH` and `NOTED`, from run.json (its spec first,
    its resolved config where the spec is silent) and the op kinds of summary.json as a fallback."""
    run_dir = Path(run_dir)
    run = _load_json(run_dir / "run.json")
    spec: dict[str, Any] = run.get("spec") or {}
    config: dict[str, Any] = run.get("config") or {}
    rate: dict[str, Any] = spec.get("rate") or {}
    ops = [o for o in spec.get("ops") or [] if isinstance(o, dict) and "name" in o]
    kinds = sorted(str(o["name"]) for o in ops)
    if not kinds and (run_dir / "summary.json").exists():
        kinds = sorted(_load_json(run_dir / "summary.json").get("ops") or {})
    steps = [(_num(s.get("rate")), _num(s.get("duration_s"))) for s in rate.get("steps") or []]
    return {
        "workload": spec.get("name", run.get("name")),
        "generator": spec.get("workload"),
        "target": spec.get("target"),
        "closed_loop": bool(config.get("closed_loop", False)),
        "rate.profile": rate.get("profile", config.get("profile", "constant")),
        "rate.rate": _num(rate.get("rate", config.get("rate"))),
        "rate.end_rate": _num(rate.get("end_rate")),
        "rate.steps": steps,
        "rate.burst_ops": rate.get("burst_ops"),
        "rate.burst_every_s": _num(rate.get("burst_every_s")),
        "rate.poisson": bool(rate.get("poisson", False)),
        "duration_s": _num(spec.get("duration_s", config.get("duration_s"))),
        "warmup_s": _num(spec.get("warmup_s", config.get("warmup_s"))) or 0.0,
        "op_kinds": kinds,
        "processes": config.get("processes", spec.get("processes")),
        "timeout_s": _num(spec.get("timeout_s")),
        "op_weights": {str(o["name"]): _num(o.get("weight", 1.0)) for o in ops},
        "target_options": spec.get("target_options") or {},
        "workload_options": spec.get("workload_options") or {},
    }


def _started_at(run_dir: Path) -> datetime:
    stamp = _load_json(Path(run_dir) / "run.json").get("started_at")
    if not isinstance(stamp, str):
        raise ValueError(f"{run_dir}/run.json: no started_at")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def pick_newest(run_dirs: list[Path]) -> Path:
    """The run started last (run.json's started_at; the name breaks ties), so that a glob such as
    `runs/*-cart-smoke` names the run to gate. Paths without a run.json are skipped."""
    dated = []
    for d in run_dirs:
        if (Path(d) / "run.json").exists():
            dated.append((_started_at(Path(d)), Path(d).name, Path(d)))
    if not dated:
        raise ValueError(f"no run directory (with a run.json) among {len(run_dirs)} path(s)")
    return max(dated, key=lambda x: (x[0], x[1]))[2]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def _dict_diff(base: dict[str, Any], cur: dict[str, Any]) -> str:
    keys = sorted(set(base) | set(cur))
    return "; ".join(f"{k}: baseline {_show(base.get(k))}, current {_show(cur.get(k))}"
                     for k in keys if base.get(k) != cur.get(k))


def _differences(base: dict[str, Any], cur: dict[str, Any], fields: Iterable[str]) -> dict[str, str]:
    """field -> "baseline X, current Y" for every field that differs."""
    out = {}
    for f in fields:
        b, c = base.get(f), cur.get(f)
        if b == c:
            continue
        out[f] = _dict_diff(b, c) if isinstance(b, dict) and isinstance(c, dict) else \
            f"baseline {_show(b)}, current {_show(c)}"
    return out


# -- interval data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hist:
    """The non-empty buckets of a histogram: each bucket's highest equivalent value (µs, ascending, as
    hdrh's percentiles report it) and its count."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def value_at(self, percentile: float) -> float:
        """hdrh's get_value_at_percentile on these buckets (same rounding, same bucket value)."""
        cum = np.cumsum(self.counts)
        target = max(int(percentile * int(cum[-1]) / 100 + 0.5), 1)
        return float(self.values[int(np.searchsorted(cum, target))])


def _merge(hists: Sequence[_Hist]) -> _Hist:
    if len(hists) == 1:
        return hists[0]
    values, inverse = np.unique(np.concatenate([h.values for h in hists]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([h.counts for h in hists]).astype(np.float64))
    return _Hist(values, counts.astype(np.int64))


def _bucket_values(hist: HdrHistogram, index: np.ndarray) -> np.ndarray:
    """Highest equivalent value of each counts index (hdrh's get_value_from_index then
    get_highest_equivalent_value, vectorised)."""
    half_mag, half_count = hist.sub_bucket_half_count_magnitude, hist.sub_bucket_half_count
    bucket = (index >> half_mag) - 1
    sub = (index & (half_count - 1)) + half_count
    first = bucket < 0
    sub = np.where(first, sub - half_count, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + hist.unit_magnitude)
    return lowest + (np.int64(1) << (bucket + hist.unit_magnitude)) - 1


def _read_hlog(path: Path) -> dict[int, _Hist]:
    """Interval start (s since the log's StartTime, rounded to the second) -> its histogram."""
    out: dict[int, _Hist] = {}
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    try:
        while (hist := reader.get_next_interval_histogram()) is not None:
            t = round(hist.get_start_time_stamp() / 1000.0 - reader.get_start_time_sec())
            counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.int64)
            index = np.flatnonzero(counts)
            if index.size:
                h = _Hist(_bucket_values(hist, index.astype(np.int64)), counts[index])
                out[t] = _merge([out[t], h]) if t in out else h
    finally:
        reader.close()
    return out


@dataclass
class _Run:
    path: Path
    ident: dict[str, Any]
    summary: dict[str, Any]
    intervals: dict[str, list[_Hist]]  # op ("overall" or kind) -> post-warm-up intervals, in time order

    @classmethod
    def load(cls, path: Path) -> _Run:
        path = Path(path)
        ident = identity(path)
        summary = _load_json(path / "summary.json")
        measured = cls._measured_seconds(path, float(ident["warmup_s"] or 0.0))
        kinds = sorted(set(summary.get("ops") or {}) | set(ident["op_kinds"]))
        by_t: dict[str, dict[int, _Hist]] = {}
        for kind in kinds:
            log = path / f"{kind.replace('/', '_')}.response.hlog"
            if log.exists():
                by_t[kind] = {t: h for t, h in _read_hlog(log).items() if measured(t)}
        intervals = {kind: [iv[t] for t in sorted(iv)] for kind, iv in by_t.items()}
        seconds = sorted({t for iv in by_t.values() for t in iv})
        intervals["overall"] = [_merge([by_t[k][t] for k in by_t if t in by_t[k]]) for t in seconds]
        return cls(path, ident, summary, intervals)

    @staticmethod
    def _measured_seconds(path: Path, warmup_s: float) -> Callable[[int], bool]:
        """Which interval starts count: the seconds timeseries.jsonl flags `"warmup": false` (every
        interval the harness logs has its line; a stray stamp in an .hlog has none), else t >= warmup_s."""
        ts = path / "timeseries.jsonl"
        rows = [json.loads(line) for line in ts.read_text(encoding="utf-8").splitlines()
                if line.strip()] if ts.exists() else []
        if rows:
            seconds = {int(r["t"]) for r in rows if "t" in r and not r.get("warmup")}
            return seconds.__contains__
        return lambda t: t >= warmup_s - 1e-6

    def block(self, op: str) -> dict[str, Any]:
        if op == "overall":
            return self.summary.get("overall") or {}
        return (self.summary.get("ops") or {}).get(op) or {}

    def latency_ms(self, op: str, key: str, percentile: float) -> float | None:
        """summary.json's run-level value; from the intervals when the summary lacks it."""
        value = (self.block(op).get("response_time_us") or {}).get(key)
        if value is not None:
            return float(value) / 1000.0
        ivs = self.intervals.get(op) or []
        return _merge(ivs).value_at(percentile) / 1000.0 if ivs else None


def _windows(intervals: Sequence[_Hist], need: int) -> list[_Hist]:
    """Consecutive intervals merged until each window holds `need` samples; a short tail is dropped."""
    out: list[_Hist] = []
    acc: list[_Hist] = []
    n = 0
    for iv in intervals:
        acc.append(iv)
        n += iv.total
        if n >= need:
            out.append(_merge(acc))
            acc, n = [], 0
    return out


def samples_needed(percentile: float, min_samples_per_interval: int) -> int:
    """A window's quantile q is only estimated (not its maximum) with at least 1 / (1 - q) samples."""
    return max(min_samples_per_interval, math.ceil(1.0 / (1.0 - percentile / 100.0) - 1e-9))


# -- statistics ------------------------------------------------------------------------------------


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1
    bounds = np.r_[np.flatnonzero(starts), values.size]
    avg = (bounds[:-1] + bounds[1:] + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(values.size)
    ranks[order] = avg[group]
    return ranks


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for aa in (m * (b - m) * x / ((a - 1.0 + 2 * m) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1.0 + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def run_level_p(current: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """One-sided p-value that the current run's location lies above the baseline runs' locations by more
    than their run-to-run spread: a prediction-interval t test (k - 1 degrees of freedom) on each run's
    median log window value. The spread is at least the within-run error of a median (MAD-based) and the
    histograms' resolution (0.1%), so identical baselines do not make every change significant."""
    logs = [np.log(np.maximum(g, 1.0)) for g in groups]  # µs; a 0 µs bucket counts as 1 µs
    locs = np.array([float(np.median(g)) for g in logs])
    k = locs.size
    if k < 2:
        raise ValueError("the run-level test needs at least two baseline runs")
    within = [(1.2533 * 1.4826 * float(np.median(np.abs(g - np.median(g))))) ** 2 / g.size for g in logs]
    spread = max(float(np.var(locs, ddof=1)), float(np.mean(within)), RESOLUTION**2)
    loc = float(np.median(np.log(np.maximum(current, 1.0))))
    t = (loc - float(locs.mean())) / math.sqrt(spread * (1.0 + 1.0 / k))
    return t_sf(t, k - 1)


def mann_whitney_greater(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided p-value of "x tends to be larger than y": Mann-Whitney U, normal approximation with tie
    and continuity corrections (exact enough from 5 values a side for a 1% decision)."""
    n1, n2 = int(x.size), int(y.size)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = np.concatenate([x, y]).astype(np.float64)
    ranks = _average_ranks(pooled)
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    _, ties = np.unique(pooled, return_counts=True)
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum()) / (n * (n - 1))
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return 1.0  # every value tied: no evidence either way
    z = (u1 - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# -- comparison ------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "ops/s":
        return f"{value:.1f} ops/s"
    return f"{value:.4%}"


def _change(base: float | None, cur: float | None, unit: str) -> str:
    if base is None or cur is None:
        return f"baseline {_fmt(base, unit)}, current {_fmt(cur, unit)}"
    rel = f", {cur / base - 1:+.1%}" if base else ""
    diff = f"{cur - base:+.2f} ms" if unit == "ms" else (
        f"{cur - base:+.1f} ops/s" if unit == "ops/s" else f"{(cur - base) * 100:+.3f} points")
    return f"{_fmt(base, unit)} -> {_fmt(cur, unit)} ({diff}{rel})"


def _ratio(base: float | None, cur: float | None) -> float | None:
    return cur / base if base and cur is not None else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def _latency(op: str, metric: str, cur: _Run, bases: list[_Run], *, tolerance: float, alpha: float,
             min_intervals: int, min_samples: int, floor_ms: float) -> Comparison:
    key, pct = LATENCIES[metric]
    cur_value = cur.latency_ms(op, key, pct)
    base_value = _median(b.latency_ms(op, key, pct) for b in bases)
    ratio = _ratio(base_value, cur_value)
    change = _change(base_value, cur_value, "ms")
    need = samples_needed(pct, min_samples)
    windows = [_windows(r.intervals.get(op) or [], need) for r in (cur, *bases)]
    cur_w = np.array([w.value_at(pct) for w in windows[0]])
    base_groups = [np.array([w.value_at(pct) for w in ws]) for ws in windows[1:]]
    base_w = np.concatenate(base_groups) if base_groups else np.array([])
    # every window a single second (the usual case), or seconds merged to reach `need` samples
    single = all(len(ws) == sum(iv.total >= need for iv in r.intervals.get(op) or [])
                 for ws, r in zip(windows, (cur, *bases), strict=True))
    if single:
        unit_word = "1 s intervals" if need == min_samples else f"1 s intervals (>= {need} samples each)"
    else:
        unit_word = f"windows of >= {need} samples"
    if cur_w.size < min_intervals or base_w.size < min_intervals:
        detail = (f"not compared: {cur_w.size} current and {base_w.size} baseline {unit_word} after the warm-up "
                  f"(a {key} window needs >= {need} samples; at least {min_intervals} windows each side)"
                  f"; {change}")
        return Comparison(op, metric, base_value, cur_value, ratio, None, False, "ms", detail)
    p_within = mann_whitney_greater(cur_w, base_w)
    spread_groups = [g for g in base_groups if g.size >= min_intervals]
    p_runs = run_level_p(cur_w, spread_groups) if len(spread_groups) >= MIN_RUNS_FOR_SPREAD else None
    p = max(p_within, p_runs) if p_runs is not None else p_within
    assert cur_value is not None and base_value is not None  # there are windows, so there are samples
    significant = p < alpha
    beyond_tol = ratio is not None and ratio > 1.0 + tolerance
    beyond_floor = cur_value - base_value > floor_ms
    test = f"U test over {cur_w.size} vs {base_w.size} {unit_word} p = {p_within:.2g}"
    if p_runs is not None:
        test += f", run-level t test against the spread of {len(spread_groups)} baseline runs p = {p_runs:.2g}"
    else:
        test += (f" (run-to-run noise not estimated: {len(spread_groups)} baseline run(s), "
                 f"{MIN_RUNS_FOR_SPREAD} needed)")
    regression = significant and beyond_tol and beyond_floor
    if regression:
        verdict = f"regression: {change}, beyond {tolerance:.0%} and {floor_ms:g} ms; {test}, below {alpha:g}"
    elif not significant:
        verdict = f"no regression: {change}, within the noise ({test}, not below {alpha:g})"
    elif not beyond_tol:
        verdict = f"no regression: {change}, within the {tolerance:.0%} tolerance ({test})"
    else:
        verdict = f"no regression: {change}, within the {floor_ms:g} ms floor ({test})"
    return Comparison(op, metric, base_value, cur_value, ratio, p, regression, "ms", verdict)


def _rates(op: str, cur: _Run, bases: list[_Run], tolerance: float) -> list[Comparison]:
    out = []
    c = _num(cur.block(op).get("achieved_rate"))
    b = _median(_num(r.block(op).get("achieved_rate")) for r in bases)
    ratio = _ratio(b, c)
    change = _change(b, c, "ops/s")
    if c is None or b is None:
        out.append(Comparison(op, "achieved_rate", b, c, ratio, None, False, "ops/s",
                              f"not compared: no achieved rate on one side ({change})"))
    else:
        worse = c < (1.0 - tolerance) * b
        word = "regression" if worse else "no regression"
        how = "more than" if worse else "not more than"
        out.append(Comparison(op, "achieved_rate", b, c, ratio, None, worse, "ops/s",
                              f"{word}: {change}, {how} {tolerance:.0%} below the baseline"))
    c = _num(cur.block(op).get("error_rate"))
    b = _median(_num(r.block(op).get("error_rate")) for r in bases)
    ratio = _ratio(b, c)
    change = _change(b, c, "ratio")
    if c is None or b is None:
        out.append(Comparison(op, "error_rate", b, c, ratio, None, False, "ratio",
                              f"not compared: no error rate on one side ({change})"))
    else:
        allowed = max(tolerance * b, ERROR_RATE_FLOOR)
        worse = c - b > allowed
        word = "regression" if worse else "no regression"
        how = "more than" if worse else "not more than"
        out.append(Comparison(op, "error_rate", b, c, ratio, None, worse, "ratio",
                              f"{word}: {change}, {how} the allowed rise of {allowed * 100:.3f} points "
                              f"(max of {tolerance:.0%} of the baseline and {ERROR_RATE_FLOOR:.1%})"))
    return out


def _check_identity(cur: Path, bases: list[Path], force: bool) -> list[Comparison]:
    """Raise Incomparable on a MUST_MATCH difference (unless forced); note rows for the rest."""
    ident = identity(cur)
    found: dict[tuple[str, str], list[str]] = {}  # (field, difference) -> baseline runs showing it
    values: dict[tuple[str, str], tuple[Any, Any]] = {}
    for base in bases:
        b_ident = identity(base)
        for field, diff in _differences(b_ident, ident, (*MUST_MATCH, *NOTED)).items():
            found.setdefault((field, diff), []).append(base.name)
            values[(field, diff)] = (b_ident.get(field), ident.get(field))

    def sentence(field: str, diff: str, runs: list[str]) -> str:
        if len(bases) == 1:
            where = ""
        elif len(runs) == 1:
            where = f" (baseline run {runs[0]})"
        else:
            where = f" ({'all' if len(runs) == len(bases) else f'{len(runs)} of'} {len(bases)} baseline runs)"
        return f"{field} differs: {diff}{where}"

    refused = [sentence(f, d, runs) for (f, d), runs in found.items() if f in MUST_MATCH]
    if refused and not force:
        raise Incomparable("; ".join(refused) + " (force=True compares anyway)")
    notes = []
    for (field, diff), runs in found.items():
        b, c = values[(field, diff)]
        numeric = _num(b) is not None and _num(c) is not None
        why = "compared anyway (forced)" if field in MUST_MATCH else "allowed, compared anyway"
        notes.append(Comparison("overall", field, _num(b) if numeric else None, _num(c) if numeric else None,
                                _ratio(_num(b), _num(c)) if numeric else None, None, False, "",
                                f"{sentence(field, diff, runs)}; {why}"))
    return notes


def compare(current: Path, baselines: list[Path], *, force: bool = False, tolerance: float = 0.10,
            alpha: float = 0.01, min_intervals: int = 5, min_samples_per_interval: int = 20,
            floor_ms: float = 1.0) -> list[Comparison]:
    """Compare a run with one or several baseline runs of the same workload (see the module docstring).

    Returns note rows first (allowed or forced identity differences, runs whose generator fell behind),
    then per op ("overall", then each kind present in the current run and a baseline): p50, p99, p99.9,
    achieved rate, error rate.
    """
    current = Path(current)
    bases = [Path(b) for b in baselines if Path(b).resolve() != current.resolve()]
    if not bases:
        raise ValueError("no baseline run to compare with (a run is not its own baseline)")
    rows = _check_identity(current, bases, force)
    cur = _Run.load(current)
    base_runs = [_Run.load(b) for b in bases]
    for label, run in [("current run", cur), *((f"baseline run {b.path.name}", b) for b in base_runs)]:
        generator = run.summary.get("generator") or {}
        if generator.get("kept_up") is False:  # the latencies then include the generator's own delay
            lag = _num(generator.get("schedule_lag_p99_ms"))
            rows.append(Comparison("overall", "generator_kept_up", None, None, None, None, False, "",
                                   f"the {label}'s generator fell behind its schedule (schedule-lag p99 "
                                   f"{_fmt(lag, 'ms')}): its latencies include the generator's own delay"))
    kinds = sorted(set(cur.summary.get("ops") or {}) & {k for b in base_runs for k in b.summary.get("ops") or {}})
    for op in ["overall", *kinds]:
        with_op = [b for b in base_runs if op == "overall" or op in (b.summary.get("ops") or {})]
        for metric in LATENCIES:
            rows.append(_latency(op, metric, cur, with_op, tolerance=tolerance, alpha=alpha,
                                 min_intervals=min_intervals, min_samples=min_samples_per_interval,
                                 floor_ms=floor_ms))
        rows.extend(_rates(op, cur, with_op, tolerance))
    return rows
