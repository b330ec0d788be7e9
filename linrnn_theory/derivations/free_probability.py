r"""Large-N traces of words in R = (I - W0)^{-1}, R^T and G(lambda) = (lambda - W0)^{-1}.

The rule
--------
For ``W0 = g J`` with ``J_ij ~ N(0, 1/N)`` real, the pair ``(J, J^T)`` converges in
*-distribution to a circular element ``(c, c*)`` with ``tau(c c*) = 1`` (Voiculescu; the
real Ginibre ensemble has the same limit as the complex one). Normalised traces
``tr(X)/N`` of any word ``X`` in ``R, R^T, G`` therefore converge to ``tau(word)`` with
``R = (1 - g c)^{-1}``, ``R^T = (1 - g c*)^{-1}``, ``G = (lambda - g c)^{-1}``.

We compute ``tau`` with the Schwinger-Dyson (loop) equation of the circular element,

.. math:: \tau(c\,P) = (\tau\otimes\tau)(\partial_{c^*} P),

where ``\partial_{c*}`` is the free difference quotient with respect to ``c*``. It is the
recursive form of the non-crossing pairing rule (every ``c`` pairs with a ``c*``, and pairs
do not cross). Only ``R^T`` depends on ``c*``: ``\partial_{c*} R^T = g R^T \otimes R^T``.
Combined with ``R = 1 + g c R`` (and ``\lambda G = 1 + g c G``) this gives, for a word
``w = A R B``,

.. math:: \tau(A R B) = \tau(AB) + g^2 \sum_{R B A = P_1 R^T P_2} \tau(P_1 R^T)\,\tau(R^T P_2),

a closed recursion because every factor on the right is shorter than ``w`` except
``tau(w)`` itself (when ``P_2`` is empty), which is moved to the left-hand side.

Special cases used by the theory (``H = R R^T``):

* ``phi_n = tau(H^n)``, ``chi_n = tau(R^T H^n)``, ``psi_n(lambda) = tau(G R^T H^n)`` obey

  .. math::
     \phi_n = \chi_{n-1} + g^2 \sum_{k=1}^{n} \phi_k \chi_{n-k}, \quad
     \chi_n = \phi_n + g^2 \sum_{k=1}^{n} \chi_k \chi_{n-k}, \quad
     \lambda \psi_n = \chi_n + g^2 \sum_{k=0}^{n} \psi_k \chi_{n-k},

  with ``phi_0 = chi_0 = 1``; e.g. ``phi_1 = beta = 1/(1-g^2)``, ``phi_2 = beta^4``,
  ``psi_0 = 1/(lambda - g^2)``.

The independent check is :func:`nc_trace_series`, which counts non-crossing pairings
directly and gives the Taylor series in ``g`` of any word.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product
from typing import Iterable, Sequence

import sympy as sp

__all__ = [
    "g", "lam", "beta",
    "word_trace", "moment_sequences", "psi_sequence", "nc_count", "nc_trace_series",
    "canonical_word", "words_up_to", "transpose_word", "finite_n_correction",
]

g = sp.Symbol("g", positive=True)
lam = sp.Symbol("lambda")
beta = sp.Symbol("beta", positive=True)

#: Letters: "R" = (1 - g c)^{-1}, "T" = R^T = (1 - g c*)^{-1}, "G" = (lambda - g c)^{-1}.
LETTERS = ("R", "T", "G")
_HOLO = ("R", "G")  # letters that depend on c only


def canonical_word(word: str) -> str:
    """Canonical representative of a word under cyclic rotation and transposition.

    ``tau`` is invariant under rotation and under ``X -> X^T`` (which reverses the word
    and swaps ``R <-> T``); words with ``G`` are only rotated.

    Examples
    --------
    >>> canonical_word("TRR")
    'RRT'
    """
    rots = [word[i:] + word[:i] for i in range(len(word))] or [""]
    if "G" not in word:
        tw = word[::-1].translate(str.maketrans("RT", "TR"))
        rots += [tw[i:] + tw[:i] for i in range(len(tw))]
    return min(rots)


@lru_cache(maxsize=None)
def _trace(word: str) -> sp.Expr:
    if word == "":
        return sp.Integer(1)
    if "T" not in word:
        # holomorphic in c: tau(f(c)) = f(0); R -> 1, G -> 1/lambda
        return sp.Integer(1) / lam ** word.count("G")
    if "R" not in word and "G" not in word:
        return sp.Integer(1)  # tau(R^T ... R^T) = tau(R ... R) = 1
    # choose the first holomorphic letter, rotate it to the front: w = X P' with X in {R, G}
    i = next(k for k, ch in enumerate(word) if ch in _HOLO)
    rot = word[i:] + word[:i]
    X, rest = rot[0], rot[1:]
    P = rot  # tau(c X rest) with P = X rest
    total_rhs = word_trace(rest)  # tau(AB) term
    self_coeff = sp.Integer(0)
    acc = sp.Integer(0)
    for j, ch in enumerate(P):
        if ch != "T":
            continue
        left, right = P[: j + 1], P[j:]  # P1 R^T and R^T P2
        if j == len(P) - 1:  # P2 empty: tau(P) tau(R^T) = tau(w) * 1
            self_coeff += 1
        else:
            acc += word_trace(left) * word_trace(right)
    # X = R: tau(w) = tau(rest) + g^2 [self_coeff tau(w) + acc]
    # X = G: lambda tau(w) = tau(rest) + g^2 [self_coeff tau(w) + acc]
    lead = sp.Integer(1) if X == "R" else lam
    val = (total_rhs + g ** 2 * acc) / (lead - g ** 2 * self_coeff)
    return sp.factor(sp.cancel(val))


def word_trace(word: str) -> sp.Expr:
    """Large-N normalised trace of a word (exact rational function of ``g``, ``lambda``).

    Parameters
    ----------
    word : str
        Letters ``R`` (``R``), ``T`` (``R^T``), ``G`` (``G(lambda)``), read left to right.

    Examples
    --------
    >>> sp.simplify(word_trace("RT") - 1 / (1 - g**2))
    0
    >>> sp.simplify(word_trace("RTRT") - 1 / (1 - g**2)**4)
    0
    >>> sp.simplify(word_trace("GT") - 1 / (lam - g**2))
    0
    """
    bad = set(word) - set(LETTERS)
    if bad:
        raise ValueError(f"word may only contain R, T, G; got {sorted(bad)}")
    return _trace(canonical_word(word))


def moment_sequences(n_max: int):
    """``phi_n = tau(H^n)`` and ``chi_n = tau(R^T H^n)``, ``n = 0 .. n_max``, from the
    Schwinger-Dyson convolution recursions (rational functions of ``g``).

    Examples
    --------
    >>> phi, chi = moment_sequences(2)
    >>> [sp.simplify(p.subs(g**2, 1 - 1 / beta)) for p in phi]
    [1, beta, beta**4]
    """
    phi = [sp.Integer(1)]
    chi = [sp.Integer(1)]
    g2 = g ** 2
    for n in range(1, n_max + 1):
        p = (chi[n - 1] + g2 * sum(phi[k] * chi[n - k] for k in range(1, n))) / (1 - g2)
        p = sp.factor(sp.cancel(p))
        phi.append(p)
        c = (p + g2 * sum(chi[k] * chi[n - k] for k in range(1, n))) / (1 - g2)
        chi.append(sp.factor(sp.cancel(c)))
    return phi, chi


def psi_sequence(n_max: int, chi: Sequence[sp.Expr] | None = None):
    """``psi_n(lambda) = tau(G(lambda) R^T H^n)``, ``n = 0 .. n_max``.

    Examples
    --------
    >>> sp.simplify(psi_sequence(0)[0] * (lam - g**2))
    1
    """
    if chi is None:
        chi = moment_sequences(n_max)[1]
    g2 = g ** 2
    psi = []
    for n in range(n_max + 1):
        val = chi[n] + g2 * sum(psi[k] * chi[n - k] for k in range(0, n))
        psi.append(sp.factor(sp.cancel(val / (lam - g2 * chi[0]))))
    return psi


# -- independent check: counting non-crossing pairings ----------------------------------
@lru_cache(maxsize=None)
def nc_count(letters: str) -> int:
    """Number of non-crossing pairings of a word in ``c`` ("c") and ``c*`` ("s")
    in which every pair joins a ``c`` with a ``c*``: ``tau`` of the word for a circular
    element.

    Examples
    --------
    >>> nc_count("cs"), nc_count("cc"), nc_count("ccss"), nc_count("cscs")
    (1, 0, 1, 2)
    """
    n = len(letters)
    if n == 0:
        return 1
    if n % 2:
        return 0
    first = letters[0]
    total = 0
    for j in range(1, n, 2):
        if letters[j] != first:
            total += nc_count(letters[1:j]) * nc_count(letters[j + 1:])
    return total


def nc_trace_series(word: str, order: int) -> sp.Expr:
    """Taylor polynomial in ``g`` (degree ``<= order``) of ``tau(word)`` for a word in
    ``R`` and ``T``, by expanding ``R = sum_k g^k c^k`` and counting pairings.

    Examples
    --------
    >>> nc_trace_series("RT", 4)
    g**4 + g**2 + 1
    """
    if set(word) - {"R", "T"}:
        raise ValueError("nc_trace_series handles words in R and T only")
    coeffs = [0] * (order + 1)
    for ks in product(range(order + 1), repeat=len(word)):
        s = sum(ks)
        if s > order:
            continue
        letters = "".join(("c" if ch == "R" else "s") * k for ch, k in zip(word, ks))
        coeffs[s] += nc_count(letters)
    return sum(c * g ** k for k, c in enumerate(coeffs))


def words_up_to(length: int, alphabet: Iterable[str] = ("R", "T")) -> list[str]:
    """Canonical representatives of all words of length 1..``length``.

    Examples
    --------
    >>> words_up_to(2)
    ['R', 'RR', 'RT']
    """
    seen = set()
    for n in range(1, length + 1):
        for letters in product(alphabet, repeat=n):
            seen.add(canonical_word("".join(letters)))
    return sorted(seen, key=lambda w: (len(w), w))


# -- finite-N (1/N) correction for the real Ginibre ensemble ----------------------------
# E tr(word)/N = tau(word) + tau_1(word)/N + O(N^-2): Gaussian integration by parts,
# E[J_ab F] = E[dF/dJ_ab]/N with dR/dJ_ab = g R E_ab R and dR^T/dJ_ab = g R^T E_ba R^T,
# gives a planar (Schwinger-Dyson) term and a twisted term tau(A R B^T R^T) at order 1/N
# (non-orientable pairings, absent for complex Ginibre); see validation/check_traces.py.

def transpose_word(word: str) -> str:
    """Word of the transposed product: reversed, ``R <-> T``.

    Examples
    --------
    >>> transpose_word("RRT")
    'RTT'
    """
    return word[::-1].translate(str.maketrans("RT", "TR"))


@lru_cache(maxsize=None)
def _tau1(word: str) -> sp.Expr:
    if word == "":
        return sp.Integer(0)
    if "R" not in word:                       # R^T ... R^T: transpose of R ... R
        return finite_n_correction(transpose_word(word))
    i = word.index("R")
    w = word[i:] + word[:i]                   # w = R Y
    acc = finite_n_correction(w[1:])          # tau(R Y) = tau(Y) + g tau(J R Y)
    self_coeff = 0
    g2 = g ** 2
    for j, ch in enumerate(w):
        A, B = w[:j], w[j + 1:]
        if ch == "T":                         # planar term at order 1/N
            if j == len(w) - 1:               # B empty: tau_1(w) tau(T) + tau(w) tau_1(T)
                self_coeff += 1
                acc += g2 * word_trace(w) * finite_n_correction("T")
            else:
                acc += g2 * (finite_n_correction(A + "T") * word_trace("T" + B)
                             + word_trace(A + "T") * finite_n_correction("T" + B))
        else:                                 # twisted term: tau(A R B^T R^T)
            acc += g2 * word_trace(A + "R" + transpose_word(B) + "T")
    return sp.factor(sp.cancel(acc / (1 - g2 * self_coeff)))


def finite_n_correction(word: str) -> sp.Expr:
    """``tau_1(word)``: the O(1/N) term of ``E tr(word)/N`` for real Ginibre ``J``.

    Rational function of ``g`` (sympy), letters ``R`` and ``T`` (= ``R^T``).

    Examples
    --------
    >>> sp.factor(finite_n_correction("R"))        # E tr(R)/N = 1 + g^2 beta / N + ...
    -g**2/((g - 1)*(g + 1))
    """
    if set(word) - {"R", "T"}:
        raise ValueError("finite_n_correction handles words in R and T only")
    return _tau1(canonical_word(word)) if word else sp.Integer(0)
