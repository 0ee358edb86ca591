"""Ground-truth kinematics: an entity follows a plan of legs, integrated at a fixed step.

A plan is a start point and a sequence of legs:

- :class:`Go`: pure pursuit of a waypoint at a nominal speed; the heading is the bearing to the
  waypoint plus a mean-reverting (Ornstein-Uhlenbeck) heading error, the speed the nominal
  speed times ``1 +`` a mean-reverting relative error, clamped to the class's speed range;
- :class:`Wander`: a random walk inside a circle until an absolute time (loitering, people
  waiting at a meeting point, animals grazing): the heading random-walks, the speed is redrawn
  every few seconds from a range, and a step that would leave the circle turns back inwards.

Positions are local east/north metres; headings are radians from north, clockwise, inside
this module. The entity exists from its start time until its last leg ends. Altitude (aircraft)
is a smooth profile of time. Nothing here reads a clock: times are simulation seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
XY = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Go:
    """Move to ``to`` (local metres) at ``speed_mps``; ``mark`` names the arrival time."""

    to: XY
    speed_mps: float
    mark: str | None = None


@dataclass(frozen=True, slots=True)
class Wander:
    """Random-walk inside ``radius_m`` of ``centre`` until ``until_s`` (simulation seconds).

    ``speed_mps`` is the (low, high) range the speed is drawn from, redrawn every
    ``hold_s`` (low, high) seconds. ``mark`` names the leg's start (``<mark>``) and end
    (``<mark>_end``) times.
    """

    centre: XY
    radius_m: float
    until_s: float
    speed_mps: tuple[float, float]
    hold_s: tuple[float, float] = (5.0, 20.0)
    mark: str | None = None


Leg = Go | Wander


@dataclass(frozen=True, slots=True)
class MotionNoise:
    """How far an entity strays from its plan (the "mild" noise of the brief).

    ``heading_sigma_deg`` and ``speed_sigma`` are the stationary standard deviations of the
    heading error (degrees) and of the relative speed error; ``tau_s`` their correlation time.
    ``speed_range_mps`` clamps the resulting speed; ``wander_turn_deg_per_sqrt_s`` is the
    heading diffusion while wandering.
    """

    heading_sigma_deg: float
    speed_sigma: float
    speed_range_mps: tuple[float, float]
    tau_s: float = 20.0
    wander_turn_deg_per_sqrt_s: float = 35.0


@dataclass(frozen=True, slots=True)
class AltitudeProfile:
    """Height above ground, m: ``base + amplitude sin(2 pi t / period + phase)`` clamped to limits."""

    base_m: float
    amplitude_m: float
    period_s: float
    phase_rad: float
    limits_m: tuple[float, float]

    def at(self, time_s: Array) -> Array:
        """Heights (m) at simulation times (s)."""
        raw = self.base_m + self.amplitude_m * np.sin(2.0 * np.pi * time_s / self.period_s + self.phase_rad)
        return np.clip(raw, *self.limits_m)


@dataclass(frozen=True)
class Trajectory:
    """An integrated path: samples at steps ``first_step .. first_step + len(x) - 1``."""

    first_step: int
    x_m: Array
    y_m: Array
    z_m: Array
    marks: dict[str, float] = field(default_factory=dict)
    """Simulation times (s) of the plan's named moments (arrivals, dwell starts and ends)."""


class _Tape:
    """Standard normal and uniform draws in chunks (Python floats, few numpy calls)."""

    def __init__(self, rng: np.random.Generator, chunk: int = 2048) -> None:
        self._rng = rng
        self._chunk = chunk
        self._normals: list[float] = []
        self._uniforms: list[float] = []

    def normal(self) -> float:
        if not self._normals:
            self._normals = self._rng.standard_normal(self._chunk).tolist()
        return self._normals.pop()

    def uniform(self, low: float, high: float) -> float:
        if not self._uniforms:
            self._uniforms = self._rng.random(self._chunk).tolist()
        return low + (high - low) * self._uniforms.pop()


def integrate(
    start: XY,
    start_s: float,
    legs: Sequence[Leg],
    noise: MotionNoise,
    rng: np.random.Generator,
    step_s: float,
    last_step: int,
    altitude: AltitudeProfile | None = None,
) -> Trajectory:
    """Follow ``legs`` from ``start`` at ``start_s`` until they end or ``last_step`` is reached.

    The first sample is at step ``ceil(start_s / step_s)`` (the start point), then one per
    step. Returns the samples (also those before step 0: the caller clips to the scenario).
    """
    tape = _Tape(rng)
    decay = math.exp(-step_s / noise.tau_s)
    spread = math.sqrt(1.0 - decay * decay)
    heading_sigma = math.radians(noise.heading_sigma_deg)
    turn = math.radians(noise.wander_turn_deg_per_sqrt_s) * math.sqrt(step_s)
    speed_low, speed_high = noise.speed_range_mps
    step = math.ceil(start_s / step_s - 1e-9)
    first = step
    x, y = start
    xs, ys = [x], [y]
    heading_error = heading_sigma * tape.normal()
    speed_error = noise.speed_sigma * tape.normal()
    wander_heading = tape.uniform(0.0, 2.0 * math.pi)
    marks: dict[str, float] = {}
    for leg in legs:
        if step >= last_step:
            break
        if isinstance(leg, Go):
            tx, ty = leg.to
            arrived = False
            while step < last_step:
                heading_error = decay * heading_error + spread * heading_sigma * tape.normal()
                speed_error = decay * speed_error + spread * noise.speed_sigma * tape.normal()
                dx, dy = tx - x, ty - y
                distance = math.hypot(dx, dy)
                speed = min(max(leg.speed_mps * (1.0 + speed_error), speed_low), speed_high)
                advance = speed * step_s
                step += 1
                if distance <= advance:
                    x, y = tx, ty
                    xs.append(x)
                    ys.append(y)
                    wander_heading = math.atan2(dx, dy)
                    arrived = True
                    break
                heading = math.atan2(dx, dy) + heading_error
                x += advance * math.sin(heading)
                y += advance * math.cos(heading)
                xs.append(x)
                ys.append(y)
            if leg.mark and arrived:
                marks[leg.mark] = step * step_s
        else:
            cx, cy = leg.centre
            if leg.mark:
                marks[leg.mark] = step * step_s
            speed = tape.uniform(*leg.speed_mps)
            hold_until = step * step_s + tape.uniform(*leg.hold_s)
            while step < last_step and step * step_s < leg.until_s:
                now_s = step * step_s
                if now_s >= hold_until:
                    speed = tape.uniform(*leg.speed_mps)
                    hold_until = now_s + tape.uniform(*leg.hold_s)
                wander_heading += turn * tape.normal()
                advance = speed * step_s
                nx = x + advance * math.sin(wander_heading)
                ny = y + advance * math.cos(wander_heading)
                if math.hypot(nx - cx, ny - cy) > leg.radius_m:
                    wander_heading = math.atan2(cx - x, cy - y) + tape.uniform(-0.7, 0.7)
                    nx = x + advance * math.sin(wander_heading)
                    ny = y + advance * math.cos(wander_heading)
                    if math.hypot(nx - cx, ny - cy) > leg.radius_m:
                        nx, ny = x, y
                x, y = nx, ny
                xs.append(x)
                ys.append(y)
                step += 1
            if leg.mark:
                marks[f"{leg.mark}_end"] = step * step_s
    x_m = np.asarray(xs, dtype=np.float64)
    times = np.arange(first, first + len(xs), dtype=np.float64) * step_s
    z_m = altitude.at(times) if altitude is not None else np.zeros_like(x_m)
    return Trajectory(first, x_m, np.asarray(ys, dtype=np.float64), z_m, marks)
