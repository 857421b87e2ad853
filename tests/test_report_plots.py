"""The exchange plots (``reports.plots``): limits drawn and judged, one reused figure."""

from __future__ import annotations

import numpy as np

from reports.model import ExchangeView, StepMark, Trace
from reports.plots import ExchangePlotter, PlotLimits, UnitColours


def view(name: str, volts: float, residual: float) -> ExchangeView:
    t = np.linspace(0.0, 30.0, 31)
    made = ExchangeView(name)
    made.add("currents", Trace("E001", t, np.full_like(t, 1.5), "A"))
    made.add("currents", Trace("E003", t, np.full_like(t, -1.5), "A"))
    made.add("voltage", Trace("bus_voltage", t, np.full_like(t, volts), "V"))
    made.add("residual", Trace("residual", t, np.full_like(t, residual), "A"))
    made.line_steps = [StepMark(0.0, "rampUp"), StepMark(1.0, "start"), StepMark(29.0, "stop")]
    return made


LIMITS = PlotLimits(300.0, 380.0, 0.25, voltage_span=(0.0, 29.0), balance_span=(1.0, 29.0))


def test_a_plot_does_not_keep_the_previous_plots_range() -> None:
    plotter = ExchangePlotter(dpi=50)
    first = plotter.render(view("far", 1000.0, 2.0), LIMITS)
    assert "bus voltage above +380 V" in first.exceeded
    assert "balance residual above +0.25 A" in first.exceeded
    second = plotter.render(view("near", 350.0, 0.01), LIMITS)
    assert second.exceeded == ()
    low, high = plotter.axes[1].get_ylim()
    assert 280 < low < 300 and 380 < high < 400  # the window, not the first plot's 1000 V
    low, high = plotter.axes[2].get_ylim()
    assert -0.5 < low < -0.25 and 0.25 < high < 0.5


def test_limits_are_judged_only_while_they_apply() -> None:
    """Below the window before the bus is up (ramp-up) is not a violation."""
    ramp = view("ramp", 350.0, 0.0)
    t = ramp.voltage[0].t
    ramp.voltage[0] = Trace("bus_voltage", t, np.where(t < 1.0, 0.0, 350.0), "V")
    image = ExchangePlotter(dpi=50).render(ramp, PlotLimits(300.0, 380.0, voltage_span=(1.0, 29.0)))
    assert image.exceeded == ()


def test_each_unit_keeps_its_colour_and_the_legend_is_sorted() -> None:
    colours = UnitColours(["E003", "E001"])
    plotter = ExchangePlotter(dpi=50, colours=colours)
    image = plotter.render(view("x", 350.0, 0.0))
    currents = [e for e in image.legend if e.panel == "unit currents"]
    assert [e.label for e in currents] == ["E001", "E003"]
    assert {e.label: e.colour for e in currents} == {
        "E001": colours.of("E001"),
        "E003": colours.of("E003"),
    }
    assert colours.of("E001") != colours.of("E003")
