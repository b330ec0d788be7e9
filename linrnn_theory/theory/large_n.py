r"""The reduced model of the ``N -> infinity`` limit, built from normalised traces alone.

In the large-N limit the Gram matrices of the Krylov chains (see :mod:`.reduced`) become
(``|w| = |m| = 1``, unit input amplitude, cross ``w``-``m`` terms -> 0)::

    <u_i, u_j> = <v_i, v_j> = phi_{(i+j)/2}              (i + j even, else 0)
    <v_i, R u_j> = <v_i, v_{j+1}>,   U^T R^T w = <u_i, u_1>,   V^T R m = <v_i, v_1>,   s0 = 0
    <v_i, u_j> = chi_{(i+j-1)/2}                          (i + j odd, else 0; v_0 = w, u_0 = m)
    <v_i, G(lambda) u_j> = psi_{(i+j-1)/2}(lambda)        (i + j odd, else 0)

with ``phi, chi, psi`` from :mod:`.traces`. The chains are orthonormalised in high precision
(``mpmath``; the Hankel Gram matrices are ill-conditioned because ``phi_n`` grows
geometrically), and the projected operators are rounded to float64.
"""

from __future__ import annotations

from functools import lru_cache

import mpmath as mp
import numpy as np

from .reduced import ReducedModel
from .traces import moments, psi_moments

__all__ = ["large_n_model", "LAMBDA_MAX"]

#: Upper end of the real interval searched for outlier eigenvalues.
LAMBDA_MAX = 1.5


def _gram(phi, i, j):
    return phi[(i + j) // 2] if (i + j) % 2 == 0 else mp.mpf(0)


def _cross(chi, i, j):
    return chi[(i + j - 1) // 2] if (i + j) % 2 == 1 else mp.mpf(0)


def _orthonormaliser(G: mp.matrix, rel: mp.mpf):
    """``T`` with ``T^T G T = I`` (rank-revealing through a symmetric eigendecomposition)."""
    E, Q = mp.eigsy(G)
    n = G.rows
    emax = max(abs(E[i]) for i in range(n))
    keep = [i for i in range(n) if E[i] > rel * emax]
    T = mp.matrix(n, len(keep))
    for c, i in enumerate(keep):
        s = 1 / mp.sqrt(E[i])
        for r in range(n):
            T[r, c] = Q[r, i] * s
    return T


def _to_np(M) -> np.ndarray:
    return np.array(M.tolist(), dtype=float)


@lru_cache(maxsize=64)
def large_n_model(g: float, depth: int) -> ReducedModel:
    """Large-N reduced model with ``depth`` chain vectors per side.

    Parameters
    ----------
    g : float
        ``0 <= g < 1``.
    depth : int
        Number of chain vectors ``L`` on each side (``>= 2``; half of them belong to the
        ``w`` family, half to the ``m`` family).

    Returns
    -------
    ReducedModel

    Examples
    --------
    >>> mdl = large_n_model(0.5, 4)
    >>> mdl.shape, round(float(mdl.r_w @ mdl.r_w), 12)   # |U^T R^T w|^2 = phi_1 = beta
    ((4, 4), 1.333333333333)
    """
    if not 0.0 <= g < 1.0:
        raise ValueError(f"g must lie in [0, 1) for the large-N theory, got {g}")
    L = int(depth)
    if L < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    with mp.workdps(30):
        phi_lo, _ = moments(g, L + 2)
        ratio = max(float(phi_lo[k + 1] / phi_lo[k]) for k in range(L + 2)) if g > 0 else 1.0
    dps = 40 + int((L + 2) * max(1.0, np.log10(max(ratio, 10.0))))
    with mp.workdps(dps):
        phi, chi = moments(g, L + 2)
        idx = range(1, L + 1)
        G = mp.matrix([[_gram(phi, i, j) for j in idx] for i in idx])
        T = _orthonormaliser(G, mp.mpf(10) ** (-(dps - 20)))
        Tt = T.T
        B = mp.matrix([[_gram(phi, i, j + 1) for j in idx] for i in idx])
        rc = mp.matrix([_gram(phi, i, 1) for i in idx])
        X = mp.matrix([[_cross(chi, i, j) for j in idx] for i in idx])
        x0 = mp.matrix([_cross(chi, 0, j) for j in idx])      # <w, u_j> and <v_i, m>
        Gs = mp.matrix([[_gram(phi, i + 1, j + 1) for j in idx] for i in idx])
        cs = mp.matrix([_gram(phi, i + 1, 1) for i in idx])
        A = _to_np(Tt * B * T)
        r = _to_np(Tt * rc).ravel()
        VU = _to_np(Tt * X * T)
        t0 = _to_np(Tt * x0).ravel()
        G_s = _to_np(Tt * Gs * T)
        c_s = _to_np(Tt * cs).ravel()
        # psi pattern matrices E_n = T^T [i + j - 1 = 2n] T, kept in high precision
        n_psi = L
        En = []
        for n in range(n_psi):
            P = mp.matrix([[1 if (i + j) % 2 == 1 and (i + j - 1) // 2 == n else 0
                            for j in idx] for i in idx])
            En.append(Tt * P * T)
        phi1 = float(phi[1])
        # chain vectors in the orthonormal basis: U~ = U (T^T G), so Delta W = U~ Ct V~^T
        # has C = (T^T G) Ct (T^T G)^T
        T_inv = _to_np(Tt * G)

    def exact_outlier_matrix(lam) -> mp.matrix:
        psi = psi_moments(g, lam, chi[: n_psi])
        M = En[0] * psi[0]
        for n in range(1, n_psi):
            M += En[n] * psi[n]
        return M

    # M(lambda) is a polynomial of degree <= L in t = 1/(lambda - g^2) without constant
    # term (psi_n = P_n(lambda) / (lambda - g^2)^(n+1), deg P_n <= n): interpolate it
    # exactly at Chebyshev nodes in t (high precision), evaluate in float64 by Clenshaw.
    t_lo, t_hi = 1.0 / (LAMBDA_MAX - g * g), 1.0 / max(g - g * g, 1e-3)
    n_nodes = L + 2
    cache: dict = {}

    def chebyshev_coefficients() -> np.ndarray:
        if "cheb" not in cache:
            with mp.workdps(dps):
                nodes = [mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n_nodes) for k in range(n_nodes)]
                vals = [exact_outlier_matrix(g * g + 1 / ((t_hi + t_lo) / 2
                                                          + (t_hi - t_lo) / 2 * x))
                        for x in nodes]
                coef = []
                for j in range(n_nodes):
                    acc = vals[0] * mp.cos(j * mp.acos(nodes[0]))
                    for k in range(1, n_nodes):
                        acc += vals[k] * mp.cos(j * mp.acos(nodes[k]))
                    coef.append(_to_np(acc * (mp.mpf(2 if j else 1) / n_nodes)))
            cache["cheb"] = np.array(coef)
        return cache["cheb"]

    def outlier_matrix(lam: float) -> np.ndarray:
        t = 1.0 / (lam - g * g)
        x = (2.0 * t - (t_hi + t_lo)) / (t_hi - t_lo)
        return np.polynomial.chebyshev.chebval(x, chebyshev_coefficients())

    return ReducedModel(
        A=A, r_w=r.copy(), r_m=r.copy(), s0=0.0,
        norm_data=(phi1, c_s, G_s, phi1, c_s.copy(), G_s.copy()),
        shuffle_data=(0.0, t0.copy(), t0.copy(), VU),
        outlier_matrix=outlier_matrix, bulk_radius=float(g), depth=L, source="large_n",
        info={"dps": dps, "rank": A.shape, "exact_outlier_matrix": exact_outlier_matrix,
              "T_inv": T_inv},
    )
