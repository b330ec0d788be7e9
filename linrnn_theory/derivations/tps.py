"""Truncated power series in one variable with symbolic coefficients.

A :class:`TPS` holds ``sum_{k < n} c[k] t^k`` and does exact arithmetic modulo ``t^n``.
Used to turn the readout and ``Delta W`` series into series of singular values and
eigenvalues (products, inverses, square roots, Newton iterations on polynomials).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import sympy as sp

__all__ = ["TPS"]


class TPS:
    """Truncated power series ``c[0] + c[1] t + ... + c[n-1] t^(n-1)`` (mod ``t^n``).

    Examples
    --------
    >>> x = TPS([0, 1], 6)                     # t
    >>> ((1 + x).inv() * (1 + x)).coeffs
    [1, 0, 0, 0, 0, 0]
    >>> (1 + x).sqrt().coeffs[:3]
    [1, 1/2, -1/8]
    """

    def __init__(self, coeffs: Sequence[Any], n: int, simplify: Callable | None = None):
        c = [sp.sympify(v) for v in coeffs][:n]
        c += [sp.Integer(0)] * (n - len(c))
        self.n = n
        self._s = simplify or sp.expand
        self.coeffs = [self._s(v) for v in c]

    def _new(self, coeffs, n=None) -> "TPS":
        return TPS(coeffs, self.n if n is None else n, self._s)

    def _coerce(self, other) -> "TPS":
        if isinstance(other, TPS):
            return other
        return self._new([other])

    def __add__(self, other):
        o = self._coerce(other)
        n = min(self.n, o.n)
        return self._new([self.coeffs[k] + o.coeffs[k] for k in range(n)], n)

    __radd__ = __add__

    def __neg__(self):
        return self._new([-c for c in self.coeffs])

    def __sub__(self, other):
        return self + (-self._coerce(other))

    def __rsub__(self, other):
        return self._coerce(other) - self

    def __mul__(self, other):
        o = self._coerce(other)
        n = min(self.n, o.n)
        out = [sp.Integer(0)] * n
        for i, a in enumerate(self.coeffs[:n]):
            if a == 0:
                continue
            for j in range(n - i):
                if o.coeffs[j] != 0:
                    out[i + j] += a * o.coeffs[j]
        return self._new(out, n)

    __rmul__ = __mul__

    def valuation(self) -> int:
        """Index of the first non-zero coefficient (``n`` if all vanish)."""
        for k, c in enumerate(self.coeffs):
            if sp.simplify(c) != 0:
                return k
        return self.n

    def shift(self, k: int) -> "TPS":
        """Divide by ``t^k`` (``k`` >= 0): the series loses ``k`` known terms."""
        return self._new(self.coeffs[k:], self.n - k)

    def inv(self) -> "TPS":
        """Multiplicative inverse (requires a non-zero constant term)."""
        a0 = self.coeffs[0]
        if a0 == 0:
            raise ZeroDivisionError("series with zero constant term has no inverse")
        out = [sp.Integer(1) / a0]
        for k in range(1, self.n):
            acc = sum(self.coeffs[j] * out[k - j] for j in range(1, k + 1))
            out.append(self._s(-acc / a0))
        return self._new(out)

    def __truediv__(self, other):
        o = self._coerce(other)
        return self * o.inv()

    def sqrt(self, root0: Any = None) -> "TPS":
        """Square root with constant term ``root0`` (default ``sqrt(c[0])``)."""
        a0 = self.coeffs[0]
        r0 = sp.sqrt(a0) if root0 is None else sp.sympify(root0)
        out = [r0]
        for k in range(1, self.n):
            acc = sum(out[j] * out[k - j] for j in range(1, k))
            out.append(self._s((self.coeffs[k] - acc) / (2 * r0)))
        return self._new(out)

    def subs(self, *args, **kw) -> "TPS":
        """Substitute symbols in every coefficient."""
        return self._new([c.subs(*args, **kw) for c in self.coeffs])

    def __repr__(self) -> str:
        return f"TPS({self.coeffs}, n={self.n})"
