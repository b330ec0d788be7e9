r"""Check the large-N trace rule against sampled real Ginibre matrices.

For ``W0 = g J`` (``J_ij ~ N(0, 1/N)`` real, as in :func:`linrnn_theory.init_network`) and
``R = (I - W0)^{-1}``, every canonical word of length <= 6 in ``R`` and ``R^T``
(:func:`linrnn_theory.derivations.free_probability.words_up_to`) is sampled as
``tr(word) / N`` and compared with the Schwinger-Dyson value
:func:`linrnn_theory.derivations.free_probability.word_trace`.

Statistics
----------
``n`` independent matrices give the mean and its standard error ``SE = sd / sqrt(n)`` from
the sample spread. Fluctuations of ``tr(word)`` are O(1) (a linear eigenvalue statistic),
so ``tr/N`` fluctuates by O(1/N) -- but the *bias* of the real Ginibre ensemble is O(1/N)
too (pairings of ``J_ab`` with itself through a transpose, i.e. non-orientable surfaces;
the complex ensemble would start at O(1/N^2)). The bias/SE ratio is therefore
``~ sqrt(n)`` times an N-independent number (measured 0.3-0.7), and a plain z-test against
the large-N value fails as soon as ``n`` is large enough to be meaningful. We do not loosen
the test; we compute the bias:

.. math:: \mathbb E\,\tau_N(w) = \tau(w) + \tau_1(w)/N + O(N^{-2})

with ``tau_1`` from the exact finite-N loop equation of the real Gaussian matrix
(:func:`finite_n_correction`). Gaussian integration by parts,
``E[J_ab F] = E[dF/dJ_ab] / N``, with ``dR/dJ_ab = g R E_ab R`` and
``dR^T/dJ_ab = g R^T E_ba R^T`` gives, for ``X = A L B`` (``L`` one letter)

.. math:: \mathbb E\,\tau_N(J X) = g\sum_{L=R^T}\mathbb E[\tau_N(AR^T)\,\tau_N(R^TB)]
          + \frac gN\sum_{L=R}\mathbb E\,\tau_N(A\,R\,B^T R^T),

the first sum is the planar (Schwinger-Dyson) term, the second the twisted one. With
``R = 1 + g J R`` and ``Cov(tau_N, tau_N) = O(N^-2)`` this closes into a recursion for
``tau_1`` that only needs the large-N traces of words one letter longer. It is checked
against exact Wick enumeration of the Taylor series in ``g`` in ``tests/test_traces.py``.

Each (g, word) passes if ``|z1| < z_max`` (default 4) with
``z1 = (mean - tau - tau_1/N) / SE``. Under the null hypothesis z1 is Student-t with
``n - 1`` degrees of freedom (plus the O(N^-2) remainder): for ``n = 16``,
``P(|t_15| > 4) = 1.2e-3`` per comparison, and the 22 words of one ``g`` are strongly
correlated (same matrices). ``z0`` (no bias correction) is printed to show why the
correction is needed.

Caveat at g = 0.9: the expansion parameter of the 1/N series grows like ``beta^k`` (the
relative 1/N term is up to 0.3 for mixed words and 250 for ``R^6`` at N = 2000) and words
with many consecutive ``R`` are dominated by eigenvalues of ``W0`` near the spectral edge
(heavy tails: one sample can exceed the median several-fold). Their SE is large and the
test has little power there; the column ``rel_1/N`` shows where.

Cost: one inversion and 7 matrix products per sample (~2.6 s at N = 2000 with one BLAS
thread, i.e. ~2 minutes for 16 samples at three g).

Usage::

    python validation/check_traces.py                       # N = 2000, 16 samples per g
    python validation/check_traces.py --N 1000 --samples 32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import sympy as sp

from linrnn_theory.derivations.free_probability import (  # noqa: F401
    canonical_word, finite_n_correction, g as g_sym, transpose_word, word_trace, words_up_to)
from linrnn_theory.nonlinear import limit_blas_threads

__all__ = ["transpose_word", "finite_n_correction", "sample_traces", "compare", "main"]

Z_MAX = 4.0


def _products(R: np.ndarray) -> dict[str, np.ndarray]:
    """All products of 1..3 letters in ``R, R^T`` (7 matrix products, the rest are
    transposes), each stored C-contiguous."""
    T = R.T
    RR, RT, TR = R @ R, R @ T, T @ R
    RRR, RRT, RTR, TRR = RR @ R, RR @ T, RT @ R, TR @ R
    P = {"R": R, "RR": RR, "RT": RT, "TR": TR, "RRR": RRR, "RRT": RRT, "RTR": RTR, "TRR": TRR}
    for w in list(P):
        tw = transpose_word(w)
        if tw not in P:
            P[tw] = np.ascontiguousarray(P[w].T)
    return P


def word_traces(R: np.ndarray, words: list[str]) -> np.ndarray:
    """``tr(word)/N`` for words of length <= 6: ``tr(PQ) = sum_ij P_ij (Q^T)_ij`` with ``P, Q``
    the two halves (<= 3 letters each; ``Q^T`` is the product of the transposed word)."""
    P = _products(np.ascontiguousarray(R))
    N = R.shape[0]
    out = np.empty(len(words))
    for k, w in enumerate(words):
        if len(w) > 6:
            raise ValueError("words of length <= 6 only")
        if len(w) <= 3:
            out[k] = np.trace(P[w]) / N
        else:
            h = (len(w) + 1) // 2
            out[k] = np.vdot(P[w[:h]], P[transpose_word(w[h:])]) / N
    return out


def sample_traces(N: int, g: float, n: int, rng: np.random.Generator, words: list[str],
                  progress: bool = False) -> np.ndarray:
    """``(n, len(words))`` array of ``tr(word)/N`` for ``n`` independent ``W0 = g J``."""
    out = np.empty((n, len(words)))
    eye = np.eye(N)
    for s in range(n):
        J = rng.standard_normal((N, N)) / np.sqrt(N)
        out[s] = word_traces(np.linalg.inv(eye - g * J), words)
        if progress:
            print(f"\r  g = {g}: sample {s + 1}/{n}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out


def compare(samples: np.ndarray, g: float, N: int, words: list[str]) -> list[dict]:
    """Per word: theory, 1/N correction, mean, SE, ``z0`` (vs large N), ``z1`` (vs large N
    plus the 1/N bias)."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(n)
    rows = []
    for k, w in enumerate(words):
        t0 = float(word_trace(w).subs(g_sym, g))
        t1 = float(finite_n_correction(w).subs(g_sym, g))
        rows.append({"word": w, "theory": t0, "bias_1_over_N": t1 / N, "mean": float(mean[k]),
                     "se": float(se[k]), "median": float(np.median(samples[:, k])),
                     "z0": float((mean[k] - t0) / se[k]),
                     "z1": float((mean[k] - t0 - t1 / N) / se[k]),
                     "rel_1_over_N": t1 / N / t0})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit status 1 if some |z1| >= --z-max.")
    ap.add_argument("--N", type=int, default=2000, help="matrix size (default 2000)")
    ap.add_argument("--samples", type=int, default=16, help="matrices per g (default 16)")
    ap.add_argument("--g", type=float, nargs="+", default=[0.3, 0.6, 0.9],
                    help="gains (default 0.3 0.6 0.9)")
    ap.add_argument("--max-length", type=int, default=6, choices=range(1, 7),
                    help="longest word (<= 6, default 6)")
    ap.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    ap.add_argument("--z-max", type=float, default=Z_MAX, help="threshold on |z1| (default 4)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="OpenBLAS threads (default 1: two threads spin-wait and slow down "
                         "badly when another process shares the 2 cores)")
    ap.add_argument("--json", default="results/check_traces.json",
                    help="output JSON (default results/check_traces.json)")
    args = ap.parse_args(argv)
    if args.samples < 2:
        ap.error("--samples must be >= 2 (the SE comes from the sample spread)")
    if args.blas_threads < 1:
        ap.error("--blas-threads must be >= 1")
    with limit_blas_threads(args.blas_threads):
        return _run(args)


def _run(args) -> int:
    words = words_up_to(args.max_length)
    seeds = np.random.SeedSequence(args.seed).spawn(len(args.g))
    report = {"N": args.N, "samples": args.samples, "seed": args.seed, "z_max": args.z_max,
              "words": words, "results": {}}
    ok = True
    for gv, ss in zip(args.g, seeds):
        t = time.perf_counter()
        S = sample_traces(args.N, gv, args.samples, np.random.default_rng(ss), words,
                          progress=True)
        rows = compare(S, gv, args.N, words)
        dt = time.perf_counter() - t
        print(f"\ng = {gv}, N = {args.N}, {args.samples} samples ({dt:.0f} s)")
        print(f"{'word':8s} {'theory':>12s} {'mean':>12s} {'SE/theory':>10s} "
              f"{'rel_1/N':>9s} {'z0':>7s} {'z1':>7s}")
        for r in rows:
            flag = "" if abs(r["z1"]) < args.z_max else "  FAIL"
            ok &= not flag
            print(f"{r['word']:8s} {r['theory']:12.6g} {r['mean']:12.6g} "
                  f"{r['se'] / r['theory']:10.2e} {r['rel_1_over_N']:9.2e} {r['z0']:7.2f} "
                  f"{r['z1']:7.2f}{flag}")
        print(f"max |z0| = {max(abs(r['z0']) for r in rows):.2f}, "
              f"max |z1| = {max(abs(r['z1']) for r in rows):.2f}")
        report["results"][str(gv)] = {"seconds": dt, "rows": rows}
    report["passed"] = bool(ok)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\n{'PASS' if ok else 'FAIL'}: |z1| < {args.z_max} for every word and g; "
          f"JSON written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
