"""Symbolic derivations (sympy) behind linrnn_theory.theory: rerun and extend them.

The files live in ``linrnn_theory/derivations/``; the repository's top-level
``derivations/`` is a link to this folder (for example ``derivations/generate.py``), and
they import as ``linrnn_theory.derivations.*`` (e.g. ``linrnn_theory.derivations.generate``).
"""
