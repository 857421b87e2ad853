"""Synthetic, seeded households: one day of rooftop PV and household load per unit.

A :class:`HouseholdProfile` is a day (``DAY_S`` seconds) cut into equal segments of
``resolution_s`` (60 s by default); PV generation and household load are **piecewise
constant** on them (numpy arrays, watts). The plant reads them by time of day
(``start_of_day + plant time``, wrapping at 24 h), breaks its steps at segment edges and so
integrates every segment exactly. :meth:`HouseholdProfile.synthetic` makes one from a few
numbers and a seed, deterministic for that seed:

- **PV**: a clear-sky bell ``pv_peak_w x sin(pi x)^2`` between sunrise and sunset (``x`` the
  fraction of daylight elapsed at the segment's middle, zero at night) times a weather
  attenuation: ``sunny`` 0.90-1.00 (light haze), ``cloudy`` 0.15-0.85 (passing clouds: a
  seeded first-order random process with a 15-minute correlation time), ``rainy`` 0.08-0.12
  (low and flat). The bands do not overlap, so for any seeds a sunny day yields more than a
  cloudy one and a cloudy one more than a rainy one.
- **Load**: a base plus a morning peak (about 07:30) and a larger evening peak (about 19:30),
  with seeded multiplicative noise (5-minute correlation, within +-50 %), scaled so that the
  day's energy is exactly ``load_wh_per_day``.

How the plant uses a profile (:class:`~instruments.emulation.plant_specs.HouseholdSpec` on
a battery; the kernel in :mod:`instruments.emulation.plant`): **electrically**, as one more
constant-power terminal on the battery's node (``i = (PV - load) / V``), solved with the
node like a converter's battery side. Chosen over a bare energy flow on the battery because
then the battery voltage, the battery current the BMS and converter meters see, the
``I^2 R`` heat and the converter's battery-side trips all feel the household, and the solver
already handles constant-power terminals exactly (a checked fixed point). At or below its
``reserve_soc`` a household draws at most what keeps the battery from discharging (the
utility carries the rest of the load, as the APIS emulator's UPS does); at or above
``full_soc`` it feeds at most what keeps the battery from charging (the rest of the PV is
curtailed). Energy counters per household: PV generated, used and wasted, load, utility.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from instruments.emulation.description import DAY_S, WEATHERS, Weather
from instruments.errors import ConfigError

__all__ = [
    "ATTENUATION_BANDS",
    "DAY_S",
    "DEFAULT_RESOLUTION_S",
    "WEATHERS",
    "HouseholdProfile",
    "Weather",
    "attenuation",
    "clear_sky",
    "load_profile",
    "pv_profile",
    "smooth_noise",
]

FloatArray = npt.NDArray[np.float64]
DEFAULT_RESOLUTION_S = 60.0
DEFAULT_SUNRISE_S = 6.0 * 3600.0
DEFAULT_SUNSET_S = 18.0 * 3600.0

#: (lowest, highest) attenuation of the clear-sky output per weather.
ATTENUATION_BANDS: dict[Weather, tuple[float, float]] = {
    "sunny": (0.90, 1.00),
    "cloudy": (0.15, 0.85),
    "rainy": (0.08, 0.12),
}
_CLOUD_TAU_S = 900.0
_HAZE_TAU_S = 1800.0
_LOAD_TAU_S = 300.0
_LOAD_NOISE = 0.25
_LOAD_SHAPE = (  # (share of the base level, centre hour, width in hours)
    (1.6, 7.5, 1.0),
    (2.4, 19.5, 1.5),
)
_PV_STREAM, _LOAD_STREAM = 1, 2


class HouseholdProfile:
    """One day of PV generation and load (W), piecewise constant on equal segments.

    Parameters
    ----------
    pv_w, load_w:
        Watts per segment, finite and >= 0, one value per segment of the day.
    resolution_s:
        Segment length; it must divide a day into whole segments.
    """

    def __init__(
        self, pv_w: npt.ArrayLike, load_w: npt.ArrayLike, resolution_s: float = DEFAULT_RESOLUTION_S
    ) -> None:
        n = _segments(resolution_s)
        arrays = []
        for name, values in (("pv_w", pv_w), ("load_w", load_w)):
            a = np.array(values, dtype=np.float64)
            if a.shape != (n,):
                raise ConfigError(
                    f"household profile: {name} has shape {a.shape}; must be ({n},) "
                    f"(one value per {resolution_s:g} s segment of the day)"
                )
            if not np.isfinite(a).all() or (a < 0).any():
                raise ConfigError(f"household profile: {name} must be finite and >= 0 watts")
            a.flags.writeable = False
            arrays.append(a)
        self.pv_w, self.load_w = arrays
        self.resolution_s = float(resolution_s)
        self.segments = n

    @classmethod
    def synthetic(
        cls,
        *,
        pv_peak_w: float,
        weather: Weather,
        load_wh_per_day: float,
        seed: int,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        sunrise_s: float = DEFAULT_SUNRISE_S,
        sunset_s: float = DEFAULT_SUNSET_S,
    ) -> HouseholdProfile:
        """A seeded synthetic day (see the module docstring); same arguments, same arrays."""
        n = _segments(resolution_s)
        pv = pv_profile(
            pv_peak_w,
            weather,
            seed,
            resolution_s=resolution_s,
            sunrise_s=sunrise_s,
            sunset_s=sunset_s,
        )
        load = load_profile(load_wh_per_day, seed, resolution_s=resolution_s)
        assert len(pv) == len(load) == n
        return cls(pv, load, resolution_s)

    def segment(self, time_of_day_s: float) -> int:
        """Index of the segment holding ``time_of_day_s`` (wraps at 24 h)."""
        return math.floor((time_of_day_s % DAY_S) / self.resolution_s) % self.segments

    def pv_at(self, time_of_day_s: float) -> float:
        """PV generation (W) at a time of day."""
        return float(self.pv_w[self.segment(time_of_day_s)])

    def load_at(self, time_of_day_s: float) -> float:
        """Household load (W) at a time of day."""
        return float(self.load_w[self.segment(time_of_day_s)])

    @property
    def pv_wh(self) -> float:
        """The day's PV energy (Wh)."""
        return float(self.pv_w.sum()) * self.resolution_s / 3600.0

    @property
    def load_wh(self) -> float:
        """The day's load energy (Wh)."""
        return float(self.load_w.sum()) * self.resolution_s / 3600.0

    def __repr__(self) -> str:
        return (
            f"HouseholdProfile(pv {self.pv_wh:.0f} Wh, load {self.load_wh:.0f} Wh, "
            f"{self.segments} x {self.resolution_s:g} s)"
        )


def _segments(resolution_s: float) -> int:
    """Segments in a day; :class:`ConfigError` unless ``resolution_s`` divides it evenly."""
    ok = (
        isinstance(resolution_s, int | float)
        and not isinstance(resolution_s, bool)
        and math.isfinite(resolution_s)
        and resolution_s > 0
    )
    n = DAY_S / resolution_s if ok else 0.5
    if not ok or abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ConfigError(
            f"household profile: resolution_s = {resolution_s!r} must divide a day (86400 s) "
            "into whole segments, e.g. 60 or 300"
        )
    return round(n)


def _middles(resolution_s: float) -> FloatArray:
    """Time of day at the middle of every segment (s)."""
    n = _segments(resolution_s)
    return (np.arange(n, dtype=np.float64) + 0.5) * resolution_s


def _rng(seed: int, stream: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"household profile: seed {seed!r} must be an integer >= 0")
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def smooth_noise(rng: np.random.Generator, n: int, step_s: float, tau_s: float) -> FloatArray:
    """``n`` samples of a stationary first-order random process (unit variance, zero mean)
    with correlation time ``tau_s``, sampled every ``step_s``: white noise through a causal
    exponential filter, warmed up so that the first sample is already stationary."""
    a = math.exp(-step_s / tau_s)
    length = max(1, math.ceil(8.0 * tau_s / step_s))
    kernel = a ** np.arange(length, dtype=np.float64)
    kernel *= math.sqrt(1.0 - a * a)
    white = rng.standard_normal(n + length)
    out = np.convolve(white, kernel, mode="full")[length : length + n]
    return np.asarray(out, dtype=np.float64)


def clear_sky(
    time_of_day_s: FloatArray,
    sunrise_s: float = DEFAULT_SUNRISE_S,
    sunset_s: float = DEFAULT_SUNSET_S,
) -> FloatArray:
    """Clear-sky shape 0..1: ``sin(pi x)^2`` over daylight (``x`` = fraction elapsed), else 0."""
    if not (0.0 <= sunrise_s < sunset_s <= DAY_S):
        raise ConfigError(
            f"household profile: sunrise {sunrise_s!r} s must come before sunset {sunset_s!r} s "
            "within one day"
        )
    x = (np.asarray(time_of_day_s, dtype=np.float64) - sunrise_s) / (sunset_s - sunrise_s)
    day = (x > 0.0) & (x < 1.0)
    shape = np.where(day, np.sin(np.pi * np.clip(x, 0.0, 1.0)) ** 2, 0.0)
    return np.asarray(shape, dtype=np.float64)


def attenuation(
    weather: Weather, rng: np.random.Generator, n: int, resolution_s: float
) -> FloatArray:
    """Per-segment fraction of the clear-sky output that reaches the panels, for ``weather``.

    Always inside ``ATTENUATION_BANDS[weather]``: a smooth random process squashed into it.
    """
    if weather not in ATTENUATION_BANDS:
        raise ConfigError(
            f"household profile: weather {weather!r}; must be one of {', '.join(WEATHERS)}"
        )
    low, high = ATTENUATION_BANDS[weather]
    tau = _CLOUD_TAU_S if weather == "cloudy" else _HAZE_TAU_S
    z = smooth_noise(rng, n, resolution_s, tau)
    squash = 0.5 * (1.0 + np.tanh(0.9 * z))  # 0..1, centred on 0.5
    return low + (high - low) * squash


def pv_profile(
    pv_peak_w: float,
    weather: Weather,
    seed: int,
    *,
    resolution_s: float = DEFAULT_RESOLUTION_S,
    sunrise_s: float = DEFAULT_SUNRISE_S,
    sunset_s: float = DEFAULT_SUNSET_S,
) -> FloatArray:
    """PV generation (W) per segment: clear-sky bell x weather attenuation; 0 at night."""
    _check_power("pv_peak_w", pv_peak_w)
    t = _middles(resolution_s)
    shape = clear_sky(t, sunrise_s, sunset_s)
    rng = _rng(seed, _PV_STREAM)
    return np.asarray(
        pv_peak_w * shape * attenuation(weather, rng, len(t), resolution_s), dtype=np.float64
    )


def load_profile(
    load_wh_per_day: float, seed: int, *, resolution_s: float = DEFAULT_RESOLUTION_S
) -> FloatArray:
    """Household load (W) per segment: base + morning and evening peaks, seeded noise,
    scaled so that the day's energy is exactly ``load_wh_per_day``."""
    _check_power("load_wh_per_day", load_wh_per_day)
    t = _middles(resolution_s)
    hours = t / 3600.0
    shape = np.ones_like(hours)
    for share, centre, width in _LOAD_SHAPE:
        d = np.abs(hours - centre)
        d = np.minimum(d, 24.0 - d)  # circular distance: the evening peak wraps past midnight
        shape += share * np.exp(-0.5 * (d / width) ** 2)
    rng = _rng(seed, _LOAD_STREAM)
    noise = smooth_noise(rng, len(t), resolution_s, _LOAD_TAU_S)
    shape *= np.clip(1.0 + _LOAD_NOISE * noise, 0.5, 1.5)
    energy_ws = float(shape.sum()) * resolution_s
    return np.asarray(shape * (load_wh_per_day * 3600.0 / energy_ws), dtype=np.float64)


def _check_power(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"household profile: {name} = {value!r} is not a finite number")
    if value < 0:
        raise ConfigError(f"household profile: {name} = {value!r}; must be >= 0")
