"""How :meth:`~instruments.emulation.plant.Plant.advance` chooses its steps."""

from __future__ import annotations

from dataclasses import dataclass

from instruments.emulation.plant_specs import check_number


@dataclass(frozen=True, kw_only=True)
class Stepping:
    """How :meth:`Plant.advance` chooses its steps.

    Fine steps (``fine_step_s``) while any port slews or a setting just changed; otherwise
    the step grows by ``growth`` each time up to ``max_step_s``, held back so that no node
    voltage moves more than ``max_dv_v`` and no SoC more than ``max_dsoc`` per step, and so
    that a trip level, a SoC limit or an over-temperature is approached in ever smaller
    steps, not jumped over.
    ``fixed_step_s`` (if set) replaces all of that with a constant step.
    """

    fine_step_s: float = 1e-3
    max_step_s: float = 60.0
    max_dv_v: float = 0.5
    max_dsoc: float = 0.005
    thermal_period_s: float = 0.1
    growth: float = 4.0
    fixed_step_s: float | None = None

    def __post_init__(self) -> None:
        w = "stepping"
        check_number(w, "fine_step_s", self.fine_step_s, minimum=0, strict=True)
        check_number(w, "max_step_s", self.max_step_s, minimum=self.fine_step_s)
        check_number(w, "max_dv_v", self.max_dv_v, minimum=0, strict=True)
        check_number(w, "max_dsoc", self.max_dsoc, minimum=0, strict=True)
        check_number(w, "thermal_period_s", self.thermal_period_s, minimum=0, strict=True)
        check_number(w, "growth", self.growth, minimum=1, strict=True)
        if self.fixed_step_s is not None:
            check_number(w, "fixed_step_s", self.fixed_step_s, minimum=0, strict=True)
