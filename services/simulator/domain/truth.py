"""Ground truth: every entity's integrated path, queried by the sensor models, sampled for output.

:class:`TruthTable` keeps all entities' samples (local metres, one per integration step) in
flat arrays with per-entity offsets, so "where is everyone at time t" is one vectorised gather.
:class:`TruthSamples` is what a simulation hands out: 1 Hz WGS84 samples with velocities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from services.correlator.domain.frames import LocalFrame
from services.simulator.domain.motion import Trajectory

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Snapshot:
    """Active entities at one time each: their indexes, positions (m) and velocities (m/s)."""

    entity: IntArray
    x_m: Array
    y_m: Array
    z_m: Array
    vx_mps: Array
    vy_mps: Array

    def __len__(self) -> int:
        return len(self.entity)


class TruthTable:
    """All entities' samples on the step grid ``k * step_s`` for ``k = 0 .. last_step``."""

    def __init__(
        self,
        ids: Sequence[str],
        classes: Sequence[str],
        trajectories: Sequence[Trajectory],
        step_s: float,
        last_step: int,
    ) -> None:
        self.ids = list(ids)
        self.classes = list(classes)
        self.step_s = step_s
        self.last_step = last_step
        firsts, lasts, offsets = [], [], []
        xs, ys, zs = [], [], []
        offset = 0
        for trajectory in trajectories:
            begin = max(0, -trajectory.first_step)
            end = min(len(trajectory.x_m), last_step - trajectory.first_step + 1)
            if end <= begin:
                firsts.append(1)
                lasts.append(0)
                offsets.append(offset)
                continue
            firsts.append(trajectory.first_step + begin)
            lasts.append(trajectory.first_step + end - 1)
            offsets.append(offset)
            xs.append(trajectory.x_m[begin:end])
            ys.append(trajectory.y_m[begin:end])
            zs.append(trajectory.z_m[begin:end])
            offset += end - begin
        empty = np.zeros(0, dtype=np.float64)
        self.first_step = np.asarray(firsts, dtype=np.int64)
        """First step each entity exists (``first > last`` for one never seen)."""
        self.last_step_of = np.asarray(lasts, dtype=np.int64)
        self.offset = np.asarray(offsets, dtype=np.int64)
        self.x_m = np.concatenate(xs) if xs else empty
        self.y_m = np.concatenate(ys) if ys else empty
        self.z_m = np.concatenate(zs) if zs else empty
        self.step_index = np.zeros(len(self.x_m), dtype=np.int64)
        self.entity_index = np.zeros(len(self.x_m), dtype=np.int64)
        self.vx_mps = np.zeros(len(self.x_m), dtype=np.float64)
        self.vy_mps = np.zeros(len(self.x_m), dtype=np.float64)
        for index in range(len(self.ids)):
            part = self.entity_slice(index)
            count = part.stop - part.start
            self.step_index[part] = self.first_step[index] + np.arange(count)
            self.entity_index[part] = index
            if count >= 2:
                self.vx_mps[part] = np.gradient(self.x_m[part], step_s)
                self.vy_mps[part] = np.gradient(self.y_m[part], step_s)

    def __len__(self) -> int:
        return len(self.ids)

    def entity_slice(self, index: int) -> slice:
        """Where entity ``index``'s samples are in the flat arrays."""
        count = max(0, int(self.last_step_of[index] - self.first_step[index] + 1))
        start = int(self.offset[index])
        return slice(start, start + count)

    def times_s(self, index: int) -> Array:
        """Simulation times (s) of entity ``index``'s samples."""
        part = self.entity_slice(index)
        return self.step_index[part].astype(np.float64) * self.step_s

    def at_step(self, step: int) -> Snapshot:
        """Entities that exist at grid step ``step``, exactly as sampled."""
        alive = np.flatnonzero((self.first_step <= step) & (step <= self.last_step_of))
        flat = self.offset[alive] + (step - self.first_step[alive])
        return Snapshot(
            alive, self.x_m[flat], self.y_m[flat], self.z_m[flat], self.vx_mps[flat], self.vy_mps[flat]
        )

    def at_times(self, entity: IntArray, time_s: Array) -> tuple[Snapshot, NDArray[np.bool_]]:
        """Linear interpolation of ``entity[i]`` at ``time_s[i]``; the mask says which exist then."""
        position = time_s / self.step_s
        step = np.floor(position).astype(np.int64)
        frac = position - step
        first, last = self.first_step[entity], self.last_step_of[entity]
        ok = (step >= first) & (step <= last)
        nxt = np.where(step + 1 <= last, step + 1, step)
        base = self.offset[entity]
        i0 = np.where(ok, base + step - first, 0)
        i1 = np.where(ok, base + nxt - first, 0)

        def mix(values: Array) -> Array:
            if len(values) == 0:
                return np.zeros(len(entity), dtype=np.float64)
            return values[i0] * (1.0 - frac) + values[i1] * frac

        snapshot = Snapshot(
            entity, mix(self.x_m), mix(self.y_m), mix(self.z_m), mix(self.vx_mps), mix(self.vy_mps)
        )
        return snapshot, ok

    def sample(self, frame: LocalFrame, every_s: float = 1.0) -> TruthSamples:
        """WGS84 samples at every ``every_s`` seconds (on the grid) for output."""
        stride = max(1, round(every_s / self.step_s))
        keep = np.flatnonzero(self.step_index % stride == 0)
        keep = keep[np.lexsort((self.entity_index[keep], self.step_index[keep]))]
        lat, lon, _ = frame.to_wgs84(self.x_m[keep], self.y_m[keep], 0.0)
        return TruthSamples(
            ids=tuple(self.ids),
            classes=tuple(self.classes),
            time_s=self.step_index[keep].astype(np.float64) * self.step_s,
            entity=self.entity_index[keep],
            lat=np.round(lat, 7),
            lon=np.round(lon, 7),
            alt_m=np.round(self.z_m[keep], 2),
            velocity_east_mps=np.round(self.vx_mps[keep], 3),
            velocity_north_mps=np.round(self.vy_mps[keep], 3),
        )


class TruthSample(NamedTuple):
    """One ground-truth sample: where entity ``truth_id`` was at ``time_s``."""

    time_s: float
    truth_id: str
    target_class: str
    lat: float
    lon: float
    alt_m: float
    velocity_east_mps: float
    velocity_north_mps: float


@dataclass(frozen=True, eq=False)
class TruthSamples:
    """Ground truth at 1 Hz, column-wise (a row per entity and second, sorted by time, then entity index).

    ``alt_m`` is the height above the ground, taken as the WGS84 ellipsoid (0 m).
    """

    ids: tuple[str, ...]
    classes: tuple[str, ...]
    time_s: Array
    entity: IntArray
    """Index into ``ids``/``classes`` of each row."""
    lat: Array
    lon: Array
    alt_m: Array
    velocity_east_mps: Array
    velocity_north_mps: Array

    def __len__(self) -> int:
        return len(self.time_s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TruthSamples):
            return NotImplemented
        columns = ("time_s", "entity", "lat", "lon", "alt_m", "velocity_east_mps", "velocity_north_mps")
        return (self.ids, self.classes) == (other.ids, other.classes) and all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in columns
        )

    __hash__ = None  # type: ignore[assignment]

    def rows(self) -> Iterator[TruthSample]:
        """The samples one by one."""
        columns = zip(
            self.time_s.tolist(),
            self.entity.tolist(),
            self.lat.tolist(),
            self.lon.tolist(),
            self.alt_m.tolist(),
            self.velocity_east_mps.tolist(),
            self.velocity_north_mps.tolist(),
            strict=True,
        )
        for time_s, index, lat, lon, alt_m, ve, vn in columns:
            yield TruthSample(time_s, self.ids[index], self.classes[index], lat, lon, alt_m, ve, vn)

    def of(self, truth_id: str) -> TruthSamples:
        """Only the rows of one entity."""
        index = self.ids.index(truth_id)
        keep = self.entity == index
        return self._subset(keep)

    def _subset(self, keep: NDArray[np.bool_]) -> TruthSamples:
        return TruthSamples(
            self.ids,
            self.classes,
            self.time_s[keep],
            self.entity[keep],
            self.lat[keep],
            self.lon[keep],
            self.alt_m[keep],
            self.velocity_east_mps[keep],
            self.velocity_north_mps[keep],
        )

    @staticmethod
    def concat(parts: Sequence[TruthSamples]) -> TruthSamples:
        """Several regions' truths as one (entity ids must be distinct), sorted by time then entity."""
        ids: list[str] = []
        classes: list[str] = []
        shifted: list[IntArray] = []
        for part in parts:
            shifted.append(part.entity + len(ids))
            ids.extend(part.ids)
            classes.extend(part.classes)
        if len(set(ids)) != len(ids):
            raise ValueError("truth ids repeat across the parts")

        def cat(name: str) -> Array:
            arrays = [getattr(part, name) for part in parts]
            return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float64)

        entity = np.concatenate(shifted) if shifted else np.zeros(0, dtype=np.int64)
        time_s = cat("time_s")
        order = np.lexsort((entity, time_s))
        merged = TruthSamples(
            tuple(ids),
            tuple(classes),
            time_s,
            entity,
            cat("lat"),
            cat("lon"),
            cat("alt_m"),
            cat("velocity_east_mps"),
            cat("velocity_north_mps"),
        )
        return merged._subset_order(order)

    def _subset_order(self, order: IntArray) -> TruthSamples:
        return TruthSamples(
            self.ids,
            self.classes,
            self.time_s[order],
            self.entity[order],
            self.lat[order],
            self.lon[order],
            self.alt_m[order],
            self.velocity_east_mps[order],
            self.velocity_north_mps[order],
        )
