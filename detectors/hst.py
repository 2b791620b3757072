"""River HalfSpaceTrees over lag features with online scaling.

Idea
----
Half-space trees (Tan, Ting & Liu 2011) partition the unit cube at random and count how
many points of the previous window fell in each cell; a point in a sparsely populated cell
is anomalous. A univariate series becomes a point in ``[0, 1]^lags`` by taking the last
``lags`` values and the last change, each standardised online by an exponentially weighted mean and mean
absolute deviation (no look-ahead: no min/max of the series is known in advance) and
squashed with a logistic function. River's ``HalfSpaceTrees`` does the counting; its
trees are rebuilt deterministically from ``seed`` on restore, so the exported state is only
the cell masses (uint16) plus the scaler.

The tree score is not calibrated (its normal level depends on the series), so the alarm
threshold comes from extreme-value theory: `SPOT` on the stream of tree scores sets it at
a target false-alarm probability per point. The tree score is bounded and coarse (a point
outside everything seen still collects the mass of the top nodes, around 0.85), so the
targets are larger than for residual detectors: low 1e-3, medium 3e-3, high 1e-2. The
direction is honoured by ignoring points on the unwatched side of the scaler's mean.

Parameters
----------
direction
    ``"up"``, ``"down"`` or ``"both"``.
sensitivity
    ``"low"``, ``"medium"`` or ``"high"``.
lags
    Number of most recent values forming the feature vector (the current one included).
n_trees, height, window_size, seed
    Passed to ``river.anomaly.HalfSpaceTrees``.
scale_alpha
    Smoothing of the online scaler.

References
----------
Tan, S. C., Ting, K. M. and Liu, T. F. (2011). Fast anomaly detection for streaming data. IJCAI.
Montiel, J. et al. (2021). River: machine learning for streaming data in Python. JMLR 22.

Example
-------
>>> import random
>>> from homeostat.detectors.hst import LagHalfSpaceTrees
>>> rng = random.Random(3)
>>> det = LagHalfSpaceTrees(direction="both")
>>> for i in range(800):
...     _ = det.update_one(60.0 * i, 10.0 + rng.gauss(0.0, 1.0))
>>> det.score_one(48000.0, 10.2).score < det.score_one(48000.0, 30.0).score
True
"""

from __future__ import annotations

import base64
import math
from collections import deque
from typing import Any, ClassVar

import numpy as np
from river import anomaly

from .base import BaseDetector, Direction, Verdict, learning_verdict, ratio_to_score
from .spot import SPOT

__all__ = ["Q_BY_SENSITIVITY", "LagHalfSpaceTrees"]

Q_BY_SENSITIVITY: dict[str, float] = {"low": 1e-3, "medium": 3e-3, "high": 1e-2}


class LagHalfSpaceTrees(BaseDetector):
    """River HalfSpaceTrees on online-scaled lag vectors (see the module docstring)."""

    kind: ClassVar[str] = "hst"

    def __init__(
        self,
        direction: Direction | str = Direction.UP,
        sensitivity: str = "medium",
        *,
        lags: int = 3,
        n_trees: int = 8,
        height: int = 6,
        window_size: int = 250,
        seed: int = 42,
        scale_alpha: float = 0.01,
    ) -> None:
        super().__init__(direction, sensitivity)
        self.lags, self.n_trees, self.height = int(lags), int(n_trees), int(height)
        self.window_size, self.seed, self.scale_alpha = int(window_size), int(seed), scale_alpha
        self.n = 0
        self.mean = math.nan
        self.mad = math.nan
        self.recent: deque[float] = deque(maxlen=self.lags)
        self.spot = SPOT(Q_BY_SENSITIVITY[self.sensitivity])
        self._new_model()

    def _new_model(self) -> None:
        self.model: Any = anomaly.HalfSpaceTrees(
            n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
        )

    @property
    def min_history(self) -> int:
        """Points before judging: fill the lags, then one full reference window."""
        return self.window_size + self.lags

    @property
    def warm(self) -> bool:
        return self.n >= self.min_history and self.spot.calibrated

    def _squash(self, x: float) -> float:
        s = max(self.mad * 1.2533, 1e-9 + 1e-3 * abs(self.mean))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, (x - self.mean) / (2.0 * s)))))

    def _features(self, x: float) -> dict[str, float]:
        """The current value, its change from the previous one, and the older lags, in [0, 1]."""
        vals = [*list(self.recent)[1:], x]  # the lags - 1 previous values and x
        feats = {f"lag{len(vals) - 1 - i}": self._squash(v) for i, v in enumerate(vals)}
        s = max(self.mad * 1.2533, 1e-9 + 1e-3 * abs(self.mean))
        d = (x - vals[-2]) / (2.0 * s) if len(vals) > 1 else 0.0
        feats["diff"] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, d))))
        return feats

    def _raw(self, x: float) -> float:
        return float(self.model.score_one(self._features(x)))

    def _score(self, t: float, x: float) -> Verdict:
        if not self.warm:
            return learning_verdict(
                min(self.n, self.min_history + self.spot.n_init - 1), self.min_history + self.spot.n_init
            )
        raw = self._raw(x)
        if (self.direction is Direction.UP and x < self.mean) or (self.direction is Direction.DOWN and x > self.mean):
            raw = 0.0
        sp = self.spot
        span = (sp.z - sp.t) * self.fp_factor
        r = max((raw - sp.t) / span, 0.0) if span > 0 else 0.0
        alarm = r > 1.0
        thr = sp.t + span
        s = 1.2533 * self.mad
        return Verdict(
            score=ratio_to_score(r),
            expected=self.mean,
            lower=self.mean - 4.0 * s,
            upper=self.mean + 4.0 * s,
            alarm=alarm,
            reason=f"half-space trees mass score {raw:.3f} {'>' if alarm else '<='} SPOT threshold {thr:.3f}",
            warm=True,
            pvalue=sp.tail_probability(raw),
        )

    def _learn(self, t: float, x: float) -> None:
        if len(self.recent) == self.lags:  # full lag vectors only: the trees are built on the first one
            if self.n >= self.min_history:
                self.spot.learn(self._raw(x))
            self.model.learn_one(self._features(x))
        self.recent.append(x)
        a = self.scale_alpha if self.n >= 30 else 1.0 / (self.n + 1)
        if math.isnan(self.mean):
            self.mean, self.mad = x, 0.0
        else:
            d = x - self.mean
            self.mad += a * (abs(d) - self.mad)
            self.mean += a * d
        self.n += 1

    def _export(self) -> dict[str, Any]:
        masses: list[int] = []
        for tree in self.model.trees:
            for node in tree.iter_dfs():
                masses.extend((node.l_mass, node.r_mass))
        return {
            "params": [self.lags, self.n_trees, self.height, self.window_size, self.seed, self.scale_alpha],
            "n": self.n,
            "mean": None if math.isnan(self.mean) else self.mean,
            "mad": None if math.isnan(self.mad) else self.mad,
            "recent": list(self.recent),
            "counter": self.model.counter,
            "first_window": self.model._first_window,
            "spot": self.spot.export_state(),
            "masses": base64.b64encode(np.asarray(masses, dtype="<u2").tobytes()).decode("ascii"),
        }

    def _restore(self, model: dict[str, Any]) -> None:
        lags, n_trees, height, window_size, seed, self.scale_alpha = model["params"]
        self.lags, self.n_trees, self.height = int(lags), int(n_trees), int(height)
        self.window_size, self.seed = int(window_size), int(seed)
        self.n = int(model["n"])
        self.mean = math.nan if model["mean"] is None else float(model["mean"])
        self.mad = math.nan if model["mad"] is None else float(model["mad"])
        self.recent = deque((float(v) for v in model["recent"]), maxlen=self.lags)
        self._new_model()
        masses = np.frombuffer(base64.b64decode(model["masses"]), dtype="<u2").tolist()
        if masses:
            # rebuild the (seeded, deterministic) trees, then pour the masses back in
            self.model.learn_one({**{f"lag{i}": 0.5 for i in range(self.lags)}, "diff": 0.5})
            it = iter(masses)
            for tree in self.model.trees:
                for node in tree.iter_dfs():
                    node.l_mass, node.r_mass = next(it), next(it)
        self.spot.restore_state(model["spot"])
        self.model.counter = int(model["counter"])
        self.model._first_window = bool(model["first_window"])
