"""DSPOT detector: extreme-value thresholds on the drift-corrected series.

Idea
----
DSPOT (Siffer et al., KDD 2017) applies SPOT to ``x - M``, where ``M`` is the mean of the
last ``depth`` *normal* values, so a slowly drifting series keeps a stationary residual.
The alarm threshold is set for a target false-alarm probability ``q`` per point (by
sensitivity: low 1e-5, medium 1e-4, high 1e-3), with no distributional assumption beyond
the GPD tail. Direction ``up`` watches ``x - M``, ``down`` watches ``M - x`` and ``both``
runs two SPOTs at ``q / 2`` each.

Level shifts: DSPOT's drift window only learns normal values, so after a persistent shift
every point is an alarm forever (the stuck-filter problem of River issue #948). Here a run
of ``shift_after`` consecutive alarms re-baselines the drift window on that run.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"``, ``"medium"`` or ``"high"`` (the target ``q`` above).
depth
    Normal values averaged for the drift baseline.
n_init, level, max_peaks
    Passed to `SPOT` (calibration length, peaks quantile, peaks kept).
shift_after
    Consecutive alarms that trigger a re-baseline.

References
----------
Siffer, A., Fouque, P.-A., Termier, A. and Largouet, C. (2017). Anomaly detection in streams
with extreme value theory. KDD '17.

Example
-------
>>> import random
>>> from homeostat.detectors.dspot import DSpot
>>> rng = random.Random(1)
>>> det = DSpot(direction="up")
>>> for i in range(1000):
...     _ = det.update_one(60.0 * i, 20.0 + rng.gauss(0.0, 1.0))
>>> det.score_one(60000.0, 21.0).alarm, det.score_one(60000.0, 35.0).alarm
(False, True)
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from .base import BaseDetector, Direction, Verdict, learning_verdict, ratio_to_score
from .spot import SPOT

__all__ = ["Q_BY_SENSITIVITY", "DSpot"]

Q_BY_SENSITIVITY: dict[str, float] = {"low": 1e-5, "medium": 1e-4, "high": 1e-3}


class DSpot(BaseDetector):
    """SPOT thresholds on ``x`` minus the mean of recent normal values."""

    kind: ClassVar[str] = "dspot"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        depth: int = 10,
        n_init: int = 400,
        level: float = 0.95,
        max_peaks: int = 256,
        shift_after: int = 12,
    ) -> None:
        super().__init__(direction, sensitivity)
        self.depth, self.shift_after = int(depth), int(shift_after)
        q = Q_BY_SENSITIVITY[self.sensitivity]
        if self.direction is Direction.BOTH:
            q /= 2.0
        self.spots: dict[str, SPOT] = {
            side: SPOT(q, n_init=n_init, level=level, max_peaks=max_peaks) for side in self._sides()
        }
        self.window: deque[float] = deque(maxlen=self.depth)
        self.run: deque[float] = deque(maxlen=max(self.shift_after, 1))

    def _sides(self) -> list[str]:
        if self.direction is Direction.BOTH:
            return ["up", "down"]
        return [self.direction.value]

    @property
    def warm(self) -> bool:
        return len(self.window) == self.depth and all(s.calibrated for s in self.spots.values())

    def _baseline(self) -> float:
        return sum(self.window) / len(self.window) if self.window else math.nan

    def _residuals(self, x: float) -> dict[str, float]:
        m = self._baseline()
        return {"up": x - m, "down": m - x}

    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            seen = len(self.window) + sum(len(s.init_buf) for s in self.spots.values()) // len(self.spots)
            return learning_verdict(
                min(seen, self.depth + self.spots[self._sides()[0]].n_init - 1),
                self.depth + self.spots[self._sides()[0]].n_init,
            )
        m = self._baseline()
        res = self._residuals(x)
        best_r, best_side, alarm, p = 0.0, self._sides()[0], False, 1.0
        factor = self.fp_factor
        for side, spot in self.spots.items():
            s = res[side]
            span = spot.z - spot.t
            r = max((s - spot.t) / (factor * span), 0.0) if span > 0 else 0.0
            if r > best_r:
                best_r, best_side = r, side
            alarm = alarm or s > spot.t + factor * span
            p = min(p, spot.tail_probability(s) * len(self.spots))
        up, down = self.spots.get("up"), self.spots.get("down")
        upper = m + (up.t + factor * (up.z - up.t)) if up else m + max(s.z for s in self.spots.values())
        lower = m - (down.t + factor * (down.z - down.t)) if down else m - max(s.z for s in self.spots.values())
        q = sum(s.q for s in self.spots.values())
        reason = f"dspot {best_side} excess {best_r:.2f} of the q={q:g} threshold" + (" (alarm)" if alarm else "")
        return Verdict(
            score=ratio_to_score(best_r),
            expected=m,
            lower=lower,
            upper=upper,
            alarm=alarm,
            reason=reason,
            warm=True,
            pvalue=min(1.0, p),
        )

    def _learn(self, t: float, x: float) -> None:
        if len(self.window) < self.depth:
            self.window.append(x)
            return
        res = self._residuals(x)
        alarmed = any(spot.is_alarm(res[side]) for side, spot in self.spots.items())
        for side, spot in self.spots.items():
            spot.learn(res[side])
        if alarmed:
            self.run.append(x)
            if self.shift_after > 0 and len(self.run) >= self.shift_after:
                self.window.clear()
                self.window.extend(list(self.run)[-self.depth :])
                self.run.clear()
        else:
            self.run.clear()
            self.window.append(x)

    def _export(self) -> dict[str, Any]:
        return {
            "params": [self.depth, self.shift_after],
            "spots": {side: spot.export_state() for side, spot in self.spots.items()},
            "window": list(self.window),
            "run": list(self.run),
        }

    def _restore(self, model: dict[str, Any]) -> None:
        depth, shift_after = model["params"]
        self.depth, self.shift_after = int(depth), int(shift_after)
        self.spots = {}
        for side, state in model["spots"].items():
            spot = SPOT(1e-4)
            spot.restore_state(state)
            self.spots[side] = spot
        self.window = deque((float(v) for v in model["window"]), maxlen=self.depth)
        self.run = deque((float(v) for v in model["run"]), maxlen=max(self.shift_after, 1))
