"""A spec checked against its target and workload before anything starts.

Everything a user can misspell is refused here, naming the file, the field and the problem: an
unknown target or workload, a driver class that lacks a method, a `[target_options]` key the
driver does not know, an op kind the workload cannot make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from harness.plugins import UnknownPlugin, load_target, load_workload
from harness.protocol import DriverError, DriverShape, check_driver
from harness.spec import Spec, SpecError, describe


@dataclass(frozen=True)
class Plan:
    spec: Spec
    target: DriverShape
    workload_cls: Any | None
    source: str = "<spec>"


def make_plan(spec: Spec, source: str = "<spec>") -> Plan:
    try:
        target = check_driver(load_target(spec.target), spec.target)
    except (UnknownPlugin, DriverError) as exc:
        raise SpecError(f"{source}: field `target`: {exc}") from None
    except Exception as exc:  # a target module that fails to import
        raise SpecError(f"{source}: field `target`: cannot load {spec.target!r}: {type(exc).__name__}: {exc}"
                        ) from None
    try:
        target.options_model.model_validate(spec.target_options)
    except ValidationError as exc:
        raise SpecError(_options_error(source, "target_options", exc)) from None
    workload_cls = None
    if spec.workload:
        try:
            workload_cls = load_workload(spec.workload)
        except UnknownPlugin as exc:
            raise SpecError(f"{source}: field `workload`: {exc}") from None
        options_model = getattr(workload_cls, "Options", None)
        if options_model is not None:
            try:
                options_model.model_validate(spec.workload_options)
            except ValidationError as exc:
                raise SpecError(_options_error(source, "workload_options", exc)) from None
        kinds = getattr(workload_cls, "KINDS", None)
        if kinds is not None:
            for i, op in enumerate(spec.ops):
                if op.name not in kinds:
                    raise SpecError(f"{source}: field `ops[{i}].name`: unknown op kind {op.name!r} for workload "
                                    f"{spec.workload!r}; known: {', '.join(kinds)}")
            for name in spec.slo.ops:
                if name not in kinds:
                    raise SpecError(f"{source}: field `slo.ops.{name}`: unknown op kind {name!r} for workload "
                                    f"{spec.workload!r}; known: {', '.join(kinds)}")
    return Plan(spec, target, workload_cls, source)


def _options_error(source: str, table: str, exc: ValidationError) -> str:
    return describe(exc, source, (table,), unknown="option")
