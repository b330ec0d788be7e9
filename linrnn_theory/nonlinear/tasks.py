"""The three neuroscience tasks of the paper's nonlinear part (docs/paper.md section 3).

Every task samples a batch of trials as a :class:`TrialBatch` of arrays laid out
``(time, batch, channel)``:

* ``u``      -- inputs, ``(T, B, n_in)``;
* ``target`` -- target outputs, ``(T, B, n_out)``;
* ``mask``   -- 1.0 where ``(t, b, o)`` counts in the loss, 0.0 elsewhere, ``(T, B, n_out)``;
* ``info``   -- per-trial parameters (pulse times, amplitudes, coherences, ...).

Durations are given in units of the neuronal time constant and converted to steps with
``round(duration / dt)``; with the default ``dt = 0.5`` every duration of the paper is an
exact number of steps. Random intervals are drawn as whole numbers of steps, uniformly
between the rounded bounds (both ends included). ``target[t]`` is compared with
``z[t] = W_out^T tanh(x[t+1])``, the output after input ``u[t]`` has been received (see
:mod:`linrnn_theory.nonlinear.rnn`).

All randomness comes from an explicit :class:`numpy.random.Generator`; ``test_batch(seed)``
returns a fixed set of trials for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from .._checks import check_int, check_positive, check_range

__all__ = [
    "TrialBatch", "FlipFlopTask", "ManteTask", "RomoTask", "make_task", "TASK_NAMES",
    "TEST_SEED",
]

#: Seed of the default fixed test batch (shared by every run, so test losses compare).
TEST_SEED = 2020


class TrialBatch(NamedTuple):
    """A batch of trials: ``u`` (T,B,n_in), ``target`` and ``mask`` (T,B,n_out), ``info``.

    Examples
    --------
    >>> import numpy as np
    >>> u, target, mask, info = RomoTask().sample(2, np.random.default_rng(0))
    >>> u.shape, target.shape, sorted(info)
    ((56, 2, 1), (56, 2, 2), ['decision_onset', 'delay_steps', 'f1', 'f2'])
    """

    u: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    info: dict


def _rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


@dataclass(frozen=True)
class _Task:
    """Common machinery: step conversion, validation, fixed test batches."""

    name: ClassVar[str] = ""
    n_in: ClassVar[int] = 0
    n_out: ClassVar[int] = 0

    def _steps(self, duration: float, name: str, minimum: int = 1) -> int:
        n = int(round(duration / self.dt))
        if n < minimum:
            raise ValueError(f"{name} = {duration} is shorter than {minimum} step(s) of "
                             f"dt = {self.dt}")
        return n

    def _check_dt(self) -> None:
        check_range("dt", self.dt, 0.0, 1.0, lo_open=True)

    @property
    def n_steps(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, batch: int, rng: np.random.Generator) -> TrialBatch:  # pragma: no cover
        raise NotImplementedError

    def test_batch(self, seed: int = TEST_SEED, batch: int = 64) -> TrialBatch:
        """A fixed batch of trials: ``sample(batch, numpy.random.default_rng(seed))``.

        Examples
        --------
        >>> import numpy as np
        >>> t = RomoTask()
        >>> a, b = t.test_batch(seed=3, batch=4), t.test_batch(seed=3, batch=4)
        >>> bool(np.array_equal(a.u, b.u))
        True
        """
        seed = check_int("seed", seed, minimum=0)
        return self.sample(batch, np.random.default_rng(seed))

    def _alloc(self, batch: int):
        batch = check_int("batch", batch, minimum=1)
        T = self.n_steps
        return (batch, T, np.zeros((T, batch, self.n_in)), np.zeros((T, batch, self.n_out)),
                np.zeros((T, batch, self.n_out)))


@dataclass(frozen=True)
class FlipFlopTask(_Task):
    """2-bit flip-flop: 2 inputs, 2 outputs (docs/paper.md section 3).

    Timing rules (durations in time constants, ``dt`` = 0.5 by default):

    * A trial lasts ``t_max = 50`` (100 steps).
    * Pulses: each lasts ``pulse_duration = 1`` (2 steps), has amplitude ``+1`` or ``-1``
      (equal probability) and is delivered on one channel chosen at random.
    * Pulse onsets: the first at ``gap``, each later one at
      ``previous onset + decision_delay + gap``, with an independent
      ``gap ~ U[gap_min, gap_max] = U[5, 25]`` per pulse (whole steps). So onsets are
      10 to 30 time units apart. Pulses that would not end before ``t_max`` are dropped.
    * Target of output channel ``c``: 0 before the first pulse on ``c``; from a pulse's
      onset on, ``target_amplitude * sign`` of that pulse (0.5 or -0.5), until the next
      pulse on ``c``. The other channel is unaffected by the pulse.
    * Mask: everything counts, except channel ``c`` during the ``decision_delay = 5``
      (10 steps) that starts at the onset of a pulse on ``c`` (the pulse itself lies
      inside that delay). The other channel keeps counting.

    ``info`` holds ``onsets`` (B, K) in steps (``-1`` for no pulse), ``channels``,
    ``signs`` (B, K) and ``n_pulses`` (B,).

    Examples
    --------
    >>> import numpy as np
    >>> task = FlipFlopTask()
    >>> b = task.sample(3, np.random.default_rng(0))
    >>> b.u.shape, b.target.shape, task.n_steps
    ((100, 3, 2), (100, 3, 2), 100)
    >>> sorted(np.unique(b.u).tolist()), sorted(np.unique(b.target).tolist())
    ([-1.0, 0.0, 1.0], [-0.5, 0.0, 0.5])
    """

    dt: float = 0.5
    t_max: float = 50.0
    pulse_duration: float = 1.0
    gap_min: float = 5.0
    gap_max: float = 25.0
    decision_delay: float = 5.0
    pulse_amplitude: float = 1.0
    target_amplitude: float = 0.5

    name: ClassVar[str] = "flipflop"
    n_in: ClassVar[int] = 2
    n_out: ClassVar[int] = 2

    def __post_init__(self) -> None:
        self._check_dt()
        for f in ("t_max", "pulse_duration", "gap_min", "gap_max", "decision_delay",
                  "pulse_amplitude", "target_amplitude"):
            check_positive(f, getattr(self, f))
        if self.gap_max < self.gap_min:
            raise ValueError(f"gap_max must be >= gap_min, got {self.gap_max} < {self.gap_min}")
        if self._steps(self.decision_delay, "decision_delay") < \
                self._steps(self.pulse_duration, "pulse_duration"):
            raise ValueError("decision_delay must be at least pulse_duration")

    @property
    def n_steps(self) -> int:
        """Number of time steps of a trial."""
        return self._steps(self.t_max, "t_max")

    def sample(self, batch: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``batch`` trials (see the class docstring for the rules).

        Examples
        --------
        >>> import numpy as np
        >>> b = FlipFlopTask().sample(200, np.random.default_rng(1))
        >>> on = b.info["onsets"][:, 1:][b.info["onsets"][:, 1:] >= 0]   # later pulses
        >>> bool(on.min() >= 20)                  # onsets at least 5 + 5 time units apart
        True
        """
        rng = _rng(rng)
        B, T, u, target, mask = self._alloc(batch)
        n_pulse = self._steps(self.pulse_duration, "pulse_duration")
        n_delay = self._steps(self.decision_delay, "decision_delay")
        g_lo = self._steps(self.gap_min, "gap_min")
        g_hi = self._steps(self.gap_max, "gap_max")
        K = T // (g_lo + n_delay) + 1            # upper bound on the pulses per trial
        gaps = rng.integers(g_lo, g_hi + 1, size=(B, K))
        channels = rng.integers(0, 2, size=(B, K))
        signs = rng.choice(np.array([-1.0, 1.0]), size=(B, K))
        onsets = np.cumsum(gaps, axis=1) + n_delay * np.arange(K)[None, :]
        valid = onsets + n_pulse <= T
        # sign of each pulse at (onset, trial, channel), then "time of the last pulse on this
        # channel" by a running maximum along time
        events = np.zeros((T, B, 2))
        bb = np.broadcast_to(np.arange(B)[:, None], (B, K))
        events[onsets[valid], bb[valid], channels[valid]] = signs[valid]
        tt = np.arange(T)[:, None, None]
        last = np.maximum.accumulate(np.where(events != 0, tt, -1), axis=0)
        seen = last >= 0
        last_sign = np.take_along_axis(events, np.maximum(last, 0), axis=0)
        since = tt - last
        target[:] = np.where(seen, self.target_amplitude * last_sign, 0.0)
        u[:] = np.where(seen & (since < n_pulse), self.pulse_amplitude * last_sign, 0.0)
        mask[:] = np.where(seen & (since < n_delay), 0.0, 1.0)
        info = {
            "onsets": np.where(valid, onsets, -1),
            "channels": np.where(valid, channels, -1),
            "signs": np.where(valid, signs, 0.0),
            "n_pulses": valid.sum(axis=1),
        }
        return TrialBatch(u, target, mask, info)


@dataclass(frozen=True)
class ManteTask(_Task):
    """Context-dependent decision making (after Mante et al. 2013), docs/paper.md section 3.

    Inputs: channels 0 and 1 are the two sensory inputs, channels 2 and 3 the two
    context inputs. One output.

    Timing rules (time constants; steps at ``dt = 0.5`` in brackets):
    fixation 3 [6], stimulus 20 [40], delay 5 [10], decision 20 [40]; 48 [96] in total.

    * Each sensory channel ``i`` gets, during the stimulus only, its coherence ``c_i``
      plus white noise: an independent ``N(0, (noise_std / sqrt(dt))^2)`` value per step
      (``noise_std = 0.05``), so the time integral of the noise has standard deviation
      ``noise_std * sqrt(duration)``. ``c_1, c_2`` are drawn independently and uniformly
      from ``{+-1, +-2, +-4, +-8} / 8``. Outside the stimulus the sensory inputs are 0.
    * One context channel, chosen uniformly, is 1 during the stimulus (0 otherwise); the
      other is 0 throughout.
    * Target: 0 during fixation and stimulus (counted in the loss); delay not counted;
      during the decision ``target_amplitude * sign(c_cued) = +-0.5`` (counted).

    ``info`` holds ``coherences`` (B, 2) and ``context`` (B,).

    Examples
    --------
    >>> import numpy as np
    >>> task = ManteTask()
    >>> b = task.sample(4, np.random.default_rng(0))
    >>> b.u.shape, b.target.shape, task.n_steps
    ((96, 4, 4), (96, 4, 1), 96)
    >>> int(b.mask[:, 0, 0].sum())          # 6 + 40 + 40 counted steps
    86
    """

    dt: float = 0.5
    fixation: float = 3.0
    stimulus: float = 20.0
    delay: float = 5.0
    decision: float = 20.0
    coherences: tuple = (1 / 8, 2 / 8, 4 / 8, 8 / 8)
    noise_std: float = 0.05
    target_amplitude: float = 0.5

    name: ClassVar[str] = "mante"
    n_in: ClassVar[int] = 4
    n_out: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self._check_dt()
        for f in ("fixation", "stimulus", "decision", "target_amplitude"):
            check_positive(f, getattr(self, f))
        check_positive("delay", self.delay, strict=False)
        check_positive("noise_std", self.noise_std, strict=False)
        if len(self.coherences) == 0 or any(float(c) <= 0 for c in self.coherences):
            raise ValueError("coherences must be a non-empty tuple of positive magnitudes")

    def _bounds(self) -> tuple[int, int, int, int]:
        f = self._steps(self.fixation, "fixation")
        s = self._steps(self.stimulus, "stimulus")
        d = self._steps(self.delay, "delay", minimum=0)
        e = self._steps(self.decision, "decision")
        return f, f + s, f + s + d, f + s + d + e

    @property
    def n_steps(self) -> int:
        """Number of time steps of a trial."""
        return self._bounds()[3]

    def sample(self, batch: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``batch`` trials (see the class docstring for the rules).

        Examples
        --------
        >>> import numpy as np
        >>> b = ManteTask().sample(100, np.random.default_rng(0))
        >>> sorted(set(np.round(8 * b.info["coherences"].ravel()).astype(int).tolist()))
        [-8, -4, -2, -1, 1, 2, 4, 8]
        """
        rng = _rng(rng)
        B, T, u, target, mask = self._alloc(batch)
        stim_on, stim_off, dec_on, dec_off = self._bounds()
        mags = np.asarray(self.coherences, dtype=float)
        levels = np.concatenate([-mags[::-1], mags])
        coh = rng.choice(levels, size=(B, 2))
        context = rng.integers(0, 2, size=B)
        n_stim = stim_off - stim_on
        noise = rng.standard_normal((n_stim, B, 2)) * (self.noise_std / np.sqrt(self.dt))
        u[stim_on:stim_off, :, 0:2] = coh[None, :, :] + noise
        u[stim_on:stim_off, np.arange(B), 2 + context] = 1.0
        cued = coh[np.arange(B), context]
        target[dec_on:dec_off, :, 0] = self.target_amplitude * np.sign(cued)[None, :]
        mask[:stim_off] = 1.0
        mask[dec_on:dec_off] = 1.0
        return TrialBatch(u, target, mask, {"coherences": coh, "context": context})


@dataclass(frozen=True)
class RomoTask(_Task):
    """Parametric working memory (after Romo et al. 1999), docs/paper.md section 3.

    One input, two outputs (output 0: "first larger", output 1: "second larger").

    Timing rules (time constants; steps at ``dt = 0.5`` in brackets):

    * fixation 3 [6]: input 0, both targets 0, counted in the loss;
    * pulse 1, duration 1 [2], amplitude ``f1``;
    * delay ``~ U[2, 8]`` [4 ... 16 steps, whole steps, uniform]: not counted;
    * pulse 2, duration 1 [2], amplitude ``f2``; not counted;
    * decision delay 5 [10]: not counted;
    * decision 10 [20]: target 0.5 on the output of the correct answer, 0 on the other,
      both counted;
    * after the decision (trials with a delay shorter than 8): input 0, not counted.

    Each trial has the length of the longest one, 28 [56]. ``f1, f2 ~ U[0.5, 1.5]``
    independently, redrawn until ``|f1 - f2| >= 0.2``.

    ``info`` holds ``f1``, ``f2``, ``delay_steps`` and ``decision_onset`` (B,).

    Examples
    --------
    >>> import numpy as np
    >>> task = RomoTask()
    >>> b = task.sample(5, np.random.default_rng(0))
    >>> b.u.shape, b.target.shape, task.n_steps
    ((56, 5, 1), (56, 5, 2), 56)
    >>> bool(np.all(np.abs(b.info["f1"] - b.info["f2"]) >= 0.2))
    True
    """

    dt: float = 0.5
    fixation: float = 3.0
    pulse_duration: float = 1.0
    delay_min: float = 2.0
    delay_max: float = 8.0
    decision_delay: float = 5.0
    decision: float = 10.0
    f_min: float = 0.5
    f_max: float = 1.5
    min_difference: float = 0.2
    target_amplitude: float = 0.5

    name: ClassVar[str] = "romo"
    n_in: ClassVar[int] = 1
    n_out: ClassVar[int] = 2

    def __post_init__(self) -> None:
        self._check_dt()
        for f in ("fixation", "pulse_duration", "delay_min", "delay_max", "decision",
                  "f_max", "target_amplitude"):
            check_positive(f, getattr(self, f))
        check_positive("decision_delay", self.decision_delay, strict=False)
        check_positive("f_min", self.f_min, strict=False)
        check_positive("min_difference", self.min_difference, strict=False)
        if self.delay_max < self.delay_min:
            raise ValueError("delay_max must be >= delay_min")
        if self.f_max <= self.f_min:
            raise ValueError("f_max must be > f_min")
        if self.min_difference >= self.f_max - self.f_min:
            raise ValueError("min_difference must be smaller than f_max - f_min")

    def _parts(self) -> tuple[int, int, int, int, int, int]:
        return (self._steps(self.fixation, "fixation"),
                self._steps(self.pulse_duration, "pulse_duration"),
                self._steps(self.delay_min, "delay_min"),
                self._steps(self.delay_max, "delay_max"),
                self._steps(self.decision_delay, "decision_delay", minimum=0),
                self._steps(self.decision, "decision"))

    @property
    def n_steps(self) -> int:
        """Number of time steps of a trial (that of the longest delay)."""
        fix, pulse, _, d_hi, dd, dec = self._parts()
        return fix + 2 * pulse + d_hi + dd + dec

    def sample(self, batch: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``batch`` trials (see the class docstring for the rules).

        Examples
        --------
        >>> import numpy as np
        >>> b = RomoTask().sample(500, np.random.default_rng(0))
        >>> int(b.info["delay_steps"].min()), int(b.info["delay_steps"].max())
        (4, 16)
        """
        rng = _rng(rng)
        B, T, u, target, mask = self._alloc(batch)
        fix, pulse, d_lo, d_hi, dd, dec = self._parts()
        f1 = rng.uniform(self.f_min, self.f_max, size=B)
        f2 = rng.uniform(self.f_min, self.f_max, size=B)
        bad = np.abs(f1 - f2) < self.min_difference
        while bad.any():                      # rejection sampling of the close pairs
            n = int(bad.sum())
            f1[bad] = rng.uniform(self.f_min, self.f_max, size=n)
            f2[bad] = rng.uniform(self.f_min, self.f_max, size=n)
            bad = np.abs(f1 - f2) < self.min_difference
        delay = rng.integers(d_lo, d_hi + 1, size=B)
        tt = np.arange(T)[:, None]
        on2 = fix + pulse + delay
        dec_on = on2 + pulse + dd
        u[fix:fix + pulse, :, 0] = f1[None, :]
        u[:, :, 0] += ((tt >= on2) & (tt < on2 + pulse)) * f2[None, :]
        mask[:fix] = 1.0
        in_dec = (tt >= dec_on) & (tt < dec_on + dec)
        mask[in_dec] = 1.0
        first = (f1 > f2).astype(float) * self.target_amplitude
        target[:, :, 0] = in_dec * first[None, :]
        target[:, :, 1] = in_dec * (self.target_amplitude - first)[None, :]
        info = {"f1": f1, "f2": f2, "delay_steps": delay, "decision_onset": dec_on}
        return TrialBatch(u, target, mask, info)


TASK_NAMES = ("flipflop", "mante", "romo")
_TASKS = {"flipflop": FlipFlopTask, "mante": ManteTask, "romo": RomoTask}


def make_task(name: str, dt: float = 0.5) -> "_Task":
    """Task object by name: ``"flipflop"``, ``"mante"`` or ``"romo"``.

    Examples
    --------
    >>> make_task("romo").n_out
    2
    """
    if name not in _TASKS:
        raise ValueError(f"task must be one of {TASK_NAMES}, got {name!r}")
    return _TASKS[name](dt=dt)
