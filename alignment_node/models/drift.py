"""Per-target drift detection across epochs: sequential change detectors on a MODEL target's stream of audit
scores (``normal_scores`` of the randomized ranks of ``stats.rank_scores``, standard normal under H0).

One class per detector, as in ``river.drift``, with the interface of ``DriftDetector``: ``update(x) -> alarm``,
``drift_detected``, ``update_many``, ``restart``, ``state()`` (plain JSON) and ``DriftDetector.from_state``.

- ``CUSUM(k=0.3, h=None, arl0=4e6, sides="both")``: Page's two-sided CUSUM, the one the audit uses;
  ``cusum_arl``, ``cusum_threshold`` and ``simulate_cusum`` give its run-length theory.
- ``PageHinkley``, ``ADWIN``, ``KSWIN(seed=...)``: river's detectors, for comparison (``measure_false_alarms``).

Streams: ``normal_scores`` (ranks), ``p_value_scores`` (one p-value per epoch). Theory and design (defaults,
false alarms, why the CUSUM, how river detectors are stored): docs/models.md; measurements: bench/README.md.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Iterable

import numpy as np
from scipy import special

__all__ = ["DriftDetector", "CUSUM", "PageHinkley", "ADWIN", "KSWIN", "DETECTORS", "KINDS", "cusum_arl",
           "cusum_threshold", "simulate_cusum", "measure_false_alarms", "normal_scores", "p_value_scores",
           "DEFAULT_K", "DEFAULT_ARL0"]

DEFAULT_K = 0.3
DEFAULT_ARL0 = 4e6
_SIEGMUND = 1.166  # the overshoot correction of Siegmund's approximation for normal observations


# ------------------------------------------------------------------------------------------ streams


def _unit_interval(values: Any, what: str) -> np.ndarray:
    """``values`` as float64, clipped into (0, 1); ValueError unless every one is a number in [0, 1]."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size and not (np.all(np.isfinite(arr)) and np.all((arr >= 0) & (arr <= 1))):
        raise ValueError(f"{what} must be numbers in [0, 1]")
    return np.clip(arr, 1e-12, 1 - 1e-12)


def normal_scores(u: Any) -> np.ndarray:
    """``Phi^-1(u)``: uniform ranks (``stats.rank_scores``) to standard-normal scores (finite: u is clipped).

    >>> normal_scores([0.5, 0.975]).round(3).tolist()
    [0.0, 1.96]
    >>> bool(np.isfinite(normal_scores([0.0, 1.0])).all())
    True
    """
    return special.ndtri(_unit_interval(u, "ranks"))


def p_value_scores(p: Any) -> np.ndarray:
    """``Phi^-1(1 - p)``: p-values to scores, standard normal under H0, large for small p (use sides="up").

    >>> p_value_scores([0.5, 0.025]).round(3).tolist()
    [0.0, 1.96]
    """
    return special.ndtri(1.0 - _unit_interval(p, "p-values"))


# ------------------------------------------------------------------------------------- CUSUM theory


def cusum_arl(k: float, h: float, shift: float = 0.0, sides: str = "both") -> float:
    """Siegmund's approximation of the average run length of a CUSUM on N(shift, 1) values.

    One side: ``ARL = (exp(-2 D b) + 2 D b - 1) / (2 D^2)``, ``D = shift - k``, ``b = h + 1.166`` (``b^2`` when
    ``D = 0``). Two sides: ``1 / ARL = 1 / ARL_up + 1 / ARL_down`` (the down side sees ``-shift``).

    >>> round(cusum_arl(0.5, 4.0), 1)
    169.0
    >>> round(cusum_arl(0.5, 4.0, shift=0.5, sides="up"), 2)
    26.69
    """
    _check_sides(sides)
    b = h + _SIEGMUND

    def one(mu: float) -> float:
        d = mu - k
        if abs(d) < 1e-9:
            return b * b
        return (math.exp(-2 * d * b) + 2 * d * b - 1) / (2 * d * d)

    if sides == "up":
        return one(shift)
    if sides == "down":
        return one(-shift)
    return 1.0 / (1.0 / one(shift) + 1.0 / one(-shift))


def cusum_threshold(k: float = DEFAULT_K, arl0: float = DEFAULT_ARL0, sides: str = "both") -> float:
    """The ``h`` whose in-control ARL (``cusum_arl(k, h, 0)``) is ``arl0`` (bisection).

    >>> round(cusum_threshold(), 2)  # the defaults: k = 0.3, ARL0 = 4 million
    22.47
    >>> round(cusum_arl(0.5, cusum_threshold(0.5, 1000.0)))
    1000
    """
    if not (isinstance(k, (int, float)) and k > 0):
        raise ValueError(f"k must be positive, got {k!r}")
    if not (isinstance(arl0, (int, float)) and arl0 > 1):
        raise ValueError(f"arl0 must be a number > 1, got {arl0!r}")
    lo, hi = 0.0, 1.0
    while cusum_arl(k, hi, 0.0, sides) < arl0:
        hi *= 2
        if hi > 1e6:
            raise ValueError(f"no threshold reaches ARL0={arl0} with k={k}")
    for _ in range(100):
        mid = (lo + hi) / 2
        if cusum_arl(k, mid, 0.0, sides) < arl0:
            lo = mid
        else:
            hi = mid
    return hi


def simulate_cusum(k: float, h: float, *, horizon: int, trials: int, seed: int, shift: float = 0.0,
                   change_at: int = 0, sides: str = "both") -> np.ndarray:
    """Run lengths of the CUSUM on ``trials`` simulated streams of N(0, 1) values, shifted by ``shift`` from
    index ``change_at`` on: the 1-based index of the first alarm, or 0 when none within ``horizon`` values.
    Vectorized over trials, in chunks of time so memory stays small."""
    _check_sides(sides)
    rng = np.random.default_rng(seed)
    s_up = np.zeros(trials)
    s_down = np.zeros(trials)
    first = np.zeros(trials, dtype=np.int64)
    chunk = max(1, min(horizon, (1 << 22) // max(1, trials)))
    for start in range(0, horizon, chunk):
        x = rng.standard_normal((min(chunk, horizon - start), trials))
        if shift:
            x[max(0, change_at - start):] += shift
        for t, row in enumerate(x):
            if sides != "down":
                np.maximum(0.0, s_up + row - k, out=s_up)
            if sides != "up":
                np.maximum(0.0, s_down - row - k, out=s_down)
            alarm = ((s_up > h) | (s_down > h)) & (first == 0)
            if alarm.any():
                first[alarm] = start + t + 1
                s_up[alarm] = s_down[alarm] = -np.inf  # done: never alarm again
    return first


def measure_false_alarms(detector: "DriftDetector", streams: Iterable[Iterable[float]]) -> tuple[int, int]:
    """(streams with an alarm, streams) for fresh copies of ``detector`` fed each null stream (any kind)."""
    alarmed = total = 0
    for stream in streams:
        d = DriftDetector.from_state(detector.state(fresh=True))
        total += 1
        if any(d.update(x) for x in stream):
            alarmed += 1
    return alarmed, total


def _check_sides(sides: str) -> None:
    if sides not in ("both", "up", "down"):
        raise ValueError(f"sides must be 'both', 'up' or 'down', got {sides!r}")


# -------------------------------------------------------------------------------------- detectors


class DriftDetector:
    """What every detector has: ``update(value)`` is True on an alarm, after which the detector restarts (a new
    regime); ``drift_detected``: whether the last ``update`` alarmed (as in river). ``n``: values since the
    start; ``alarms``: alarms so far; ``last_alarm``: the 1-based index of the value that raised the last one
    (0: none). ``params``: the constructor's keyword arguments, as stored in ``state()``.

    A subclass sets ``kind`` (the name in its state) and ``params``, and defines ``_step(x) -> alarm``,
    ``restart()``, ``_memory()`` (what it remembers, as JSON) and ``_restore(state)``.
    """

    kind: ClassVar[str]
    params: dict[str, Any]

    def __init__(self) -> None:
        self.n = 0
        self.alarms = 0
        self.last_alarm = 0
        self.drift_detected = False

    def update(self, value: float) -> bool:
        """Feed one value; True when it raises an alarm (the detector then restarts).

        >>> d = CUSUM(k=0.5, h=2.0)
        >>> [d.update(x) for x in (0.0, 1.5, 1.5, 1.5)], d.drift_detected, d.last_alarm
        ([False, False, False, True], True, 4)
        >>> d.update(0.0), d.drift_detected, d.s_up  # restarted after the alarm
        (False, False, 0.0)
        """
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"drift values must be numbers, got {value!r:.80}")
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"drift values must be finite, got {x}")
        self.n += 1
        alarm = self._step(x)
        if alarm:
            self.alarms += 1
            self.last_alarm = self.n
            self.restart()
        self.drift_detected = alarm
        return alarm

    def update_many(self, values: Iterable[float]) -> list[int]:
        """Feed several values; the 1-based stream indices (``n``) at which alarms were raised.

        >>> CUSUM(k=0.5, h=2.0).update_many([1.5] * 6)
        [3, 6]
        """
        return [self.n for x in values if self.update(x)]

    def _step(self, x: float) -> bool:
        raise NotImplementedError

    def restart(self) -> None:
        """Forget the current regime; counters stay."""
        raise NotImplementedError

    def _memory(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # storage

    def state(self, fresh: bool = False) -> dict[str, Any]:
        """Plain JSON: the kind, the parameters and what the detector remembers (``fresh``: parameters only).

        >>> d = CUSUM(k=0.5, h=2.0)
        >>> d.update_many([1.0, 1.25])
        []
        >>> d.state()
        {'kind': 'cusum', 'params': {'k': 0.5, 'h': 2.0, 'sides': 'both'}, 'n': 2, 'alarms': 0, 'last_alarm': 0, \
's_up': 1.25, 's_down': 0.0}
        """
        out: dict[str, Any] = {"kind": self.kind, "params": dict(self.params)}
        if fresh:
            return out
        out.update({"n": self.n, "alarms": self.alarms, "last_alarm": self.last_alarm})
        out.update(self._memory())
        return out

    @classmethod
    def from_state(cls, state: Any) -> "DriftDetector":
        """The detector ``state()`` describes, of the class its ``kind`` names; ValueError if the state is not
        one (or, called on a subclass, names another kind).

        >>> DriftDetector.from_state({"kind": "cusum", "params": {"k": 0.5, "h": 2.0}, "s_up": 1.25}).s_up
        1.25
        """
        if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
            raise ValueError("a drift detector state is a dict with 'kind' and 'params'")
        kind = state.get("kind")
        detector_cls = DETECTORS.get(kind) if isinstance(kind, str) else None
        if detector_cls is None:
            raise ValueError(f"unknown drift detector {kind!r}: one of {', '.join(KINDS)}")
        if not issubclass(detector_cls, cls):
            raise ValueError(f"a {kind} state is not a {cls.__name__} state")
        try:
            detector = detector_cls(**state["params"])
        except TypeError as exc:
            raise ValueError(f"bad {kind} parameters: {exc}") from None
        try:
            for name in ("n", "alarms", "last_alarm"):
                value = state.get(name, 0)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
                setattr(detector, name, value)
            detector._restore(state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad drift detector state: {exc}") from None
        return detector


class CUSUM(DriftDetector):
    """Page's two-sided CUSUM for a shift of the mean of a standard-normal stream: ``S+ = max(0, S+ + x - k)``,
    ``S- = max(0, S- - x - k)``, alarm when either exceeds ``h`` (default ``cusum_threshold(k, arl0, sides)``).
    ``k``: half the smallest shift (in sd) to catch quickly; ``sides``: "both", "up" or "down".

    >>> d = CUSUM()
    >>> round(d.params["h"], 2), d.update_many([0.0] * 100), d.update_many([2.0] * 20)
    (22.47, [], [114])
    """

    kind = "cusum"

    def __init__(self, *, k: float = DEFAULT_K, h: float | None = None, arl0: float = DEFAULT_ARL0,
                 sides: str = "both"):
        super().__init__()
        k = float(k)
        if not k > 0:
            raise ValueError(f"k must be positive, got {k}")
        _check_sides(sides)
        h = float(cusum_threshold(k, arl0, sides) if h is None else h)
        if not h > 0:
            raise ValueError(f"h must be positive, got {h}")
        self.params = {"k": k, "h": h, "sides": sides}
        self.s_up = 0.0
        self.s_down = 0.0

    def _step(self, x: float) -> bool:
        k, h, sides = self.params["k"], self.params["h"], self.params["sides"]
        if sides != "down":
            self.s_up = max(0.0, self.s_up + x - k)
        if sides != "up":
            self.s_down = max(0.0, self.s_down - x - k)
        return self.s_up > h or self.s_down > h

    def restart(self) -> None:
        """Forget the current regime (the sums); counters stay."""
        self.s_up = self.s_down = 0.0

    def _memory(self) -> dict[str, Any]:
        return {"s_up": self.s_up, "s_down": self.s_down}

    def _restore(self, state: dict[str, Any]) -> None:
        for name in ("s_up", "s_down"):
            value = float(state.get(name, 0.0))
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite non-negative number")
            setattr(self, name, value)


class _RiverDetector(DriftDetector):
    """A ``river.drift`` detector (class ``_river_class``) made storable: it keeps the values seen since its last
    restart (at most ``2 * max_history``; when that fills, the last ``max_history``, the detector rebuilt from
    them) and is restored by replaying them, so the live and the restored detector are the same detector fed
    the same values."""

    _river_class: ClassVar[str]

    def __init__(self, river_params: dict[str, Any], max_history: int):
        super().__init__()
        if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 10:
            raise ValueError(f"max_history must be an integer >= 10, got {max_history!r}")
        self.params = {**river_params, "max_history": max_history}
        self.history: list[float] = []
        self._detector = self._new_detector()

    def _new_detector(self) -> Any:
        from river import drift

        params = {k: v for k, v in self.params.items() if k != "max_history"}
        try:
            return getattr(drift, self._river_class)(**params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad {self.kind} parameters: {exc}") from None

    def _replay(self) -> None:
        self._detector = self._new_detector()
        for x in self.history:
            self._detector.update(x)

    def _step(self, x: float) -> bool:
        self.history.append(x)
        self._detector.update(x)
        alarm = bool(self._detector.drift_detected)
        if not alarm and len(self.history) >= 2 * self.params["max_history"]:
            self.history = self.history[-self.params["max_history"]:]
            self._replay()
        return alarm

    def restart(self) -> None:
        """Forget the current regime (the history, the river detector); counters stay."""
        self.history = []
        self._detector = self._new_detector()

    def _memory(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def _restore(self, state: dict[str, Any]) -> None:
        history = [float(x) for x in state.get("history", [])]
        if not all(math.isfinite(x) for x in history):
            raise ValueError("history must hold finite numbers")
        self.history = history
        self._replay()


class PageHinkley(_RiverDetector):
    """``river.drift.PageHinkley`` (river's defaults), storable."""

    kind = "page_hinkley"
    _river_class = "PageHinkley"

    def __init__(self, *, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                 alpha: float = 1 - 0.0001, mode: str = "both", max_history: int = 5000):
        super().__init__({"min_instances": min_instances, "delta": delta, "threshold": threshold, "alpha": alpha,
                          "mode": mode}, max_history)


class ADWIN(_RiverDetector):
    """``river.drift.ADWIN`` (river's defaults), storable."""

    kind = "adwin"
    _river_class = "ADWIN"

    def __init__(self, *, delta: float = 0.002, clock: int = 32, max_buckets: int = 5, min_window_length: int = 5,
                 grace_period: int = 10, max_history: int = 5000):
        super().__init__({"delta": delta, "clock": clock, "max_buckets": max_buckets,
                          "min_window_length": min_window_length, "grace_period": grace_period}, max_history)


class KSWIN(_RiverDetector):
    """``river.drift.KSWIN`` (river's defaults), storable; it draws random samples, so it needs a ``seed``."""

    kind = "kswin"
    _river_class = "KSWIN"

    def __init__(self, *, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30,
                 seed: int | None = None, max_history: int = 5000):
        if not isinstance(seed, int):
            raise ValueError("kswin draws random samples: give it an integer seed")
        super().__init__({"alpha": alpha, "window_size": window_size, "stat_size": stat_size, "seed": seed},
                         max_history)


DETECTORS: dict[str, type[DriftDetector]] = {c.kind: c for c in (CUSUM, PageHinkley, ADWIN, KSWIN)}
KINDS = tuple(DETECTORS)
