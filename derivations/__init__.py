"""Symbolic derivations (sympy) behind linrnn_theory.theory: rerun and extend them.

The repository folder ``derivations/`` installs as this subpackage,
``linrnn_theory.derivations`` (for example ``linrnn_theory.derivations.generate``).
"""
