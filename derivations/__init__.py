"""Symbolic derivations (sympy) behind linrnn_theory.theory: rerun and extend them."""
