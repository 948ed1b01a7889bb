"""Workload specs: TOML files that say what to send, at which rate, and the goals.

Validation is pydantic's; errors are re-worded as ``file: field: problem`` so a
user sees which line of their spec to fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class SpecError(ValueError):
    """A workload spec that cannot be used; the message names file, field and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    rate: NonNegFloat
    duration_s: PositiveFloat


class RateProfile(_Strict):
    """Arrival-rate profile. All rates are total ops/s across every generator process."""

    profile: Literal["constant", "ramp", "steps", "burst"] = "constant"
    rate: NonNegFloat = 100.0  # constant; start rate of a ramp
    end_rate: NonNegFloat | None = None  # ramp target
    steps: list[Step] = Field(default_factory=list)
    burst_ops: Annotated[int, Field(ge=1)] | None = None  # burst: N ops at once...
    burst_every_s: PositiveFloat | None = None  # ...every this many seconds (once if None)
    poisson: bool = False  # exponential inter-arrival times instead of a fixed grid

    @model_validator(mode="after")
    def _shape(self) -> RateProfile:
        if self.profile == "ramp" and self.end_rate is None:
            raise ValueError("profile 'ramp' needs end_rate")
        if self.profile == "steps" and not self.steps:
            raise ValueError("profile 'steps' needs at least one [[rate.steps]] entry")
        if self.profile == "burst" and self.burst_ops is None:
            raise ValueError("profile 'burst' needs burst_ops")
        if self.profile == "constant" and self.rate <= 0:
            raise ValueError("rate must be greater than 0 (a run that sends nothing measures nothing)")
        if self.profile == "ramp" and self.rate <= 0 and (self.end_rate or 0) <= 0:
            raise ValueError("a ramp from 0 to 0 sends nothing")
        if self.profile == "steps" and all(s.rate <= 0 for s in self.steps):
            raise ValueError("every step has rate 0: the run would send nothing")
        return self


class OpMix(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    weight: Annotated[float, Field(gt=0)] = 1.0


class Slo(_Strict):
    """Goals; any that is set is checked by the gate. Latencies are response times."""

    p50_ms: PositiveFloat | None = None
    p90_ms: PositiveFloat | None = None
    p95_ms: PositiveFloat | None = None
    p99_ms: PositiveFloat | None = None
    p999_ms: PositiveFloat | None = None
    max_ms: PositiveFloat | None = None
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    min_rate_ratio: Annotated[float, Field(gt=0, le=1)] | None = None
    #: the generator kept its schedule when the measured window's schedule-lag p99 is at most this
    max_schedule_lag_ms: PositiveFloat = 50.0
    #: fail the run when the generator fell behind (turn off only to study an overloaded generator)
    check_generator: bool = True
    ops: dict[str, Slo] = Field(default_factory=dict)
    #: goals on a driver's extra histograms (`Completions.observe`), e.g. [slo.observed.ws_delivery]
    observed: dict[str, Slo] = Field(default_factory=dict)


class Spec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    target: Annotated[str, Field(min_length=1)]
    workload: str | None = None  # name of a workload generator; default: plain op mix
    description: str = ""
    duration_s: PositiveFloat = 30.0
    warmup_s: NonNegFloat = 0.0
    drain_timeout_s: NonNegFloat = 10.0
    timeout_s: PositiveFloat = 5.0
    max_in_flight: Annotated[int, Field(ge=1)] = 100_000
    seed: int = 1
    processes: Annotated[int, Field(ge=1)] | None = None
    rate: RateProfile = Field(default_factory=RateProfile)
    ops: list[OpMix] = Field(default_factory=lambda: [OpMix(name="op")])
    target_options: dict[str, Any] = Field(default_factory=dict)
    workload_options: dict[str, Any] = Field(default_factory=dict)
    slo: Slo = Field(default_factory=Slo)

    @model_validator(mode="after")
    def _unique_ops(self) -> Spec:
        names = [o.name for o in self.ops]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"ops: duplicate op name(s) {sorted(dup)}")
        unknown = set(self.slo.ops) - set(names)
        if unknown and self.workload is None:
            raise ValueError(f"slo.ops names op(s) {sorted(unknown)} that are not in [[ops]]")
        return self

    def with_overrides(self, **changes: Any) -> Spec:
        """Return a copy with CLI overrides applied (None values ignored), re-validated."""
        data = self.model_dump()
        for key, value in changes.items():
            if value is None:
                continue
            if key == "rate":
                data["rate"]["rate"] = value
            else:
                data[key] = value
        return parse_spec(data, "command-line overrides")


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(exc: ValidationError, source: str, prefix: tuple[str, ...] = (), unknown: str = "field") -> str:
    """pydantic's errors as `source: field `a.b`: problem (got x)` lines, one per error."""
    lines = []
    for err in exc.errors():
        field = field_path((*prefix, *err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown {unknown} (check the spelling)"
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: field `{field}`: {msg}{shown}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(describe(exc, source)) from None


def load_spec(path: str | Path) -> Spec:
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: no such workload file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: not valid TOML: {exc}") from None
    return parse_spec(data, str(p))
