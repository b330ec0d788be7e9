"""Output-file hygiene: file modes, ``python -m linrnn_theory``, plain CSV numbers."""

import os
import stat
import subprocess
import sys

import numpy as np

from linrnn_theory._io import atomic_write_text
from linrnn_theory.reproduce import FIGURES


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_python_m_package_runs():
    r = subprocess.run([sys.executable, "-m", "linrnn_theory", "--version"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout.startswith("linrnn-theory ")


def test_fig4_csv_plain_numbers():
    import linrnn_theory.reproduce.fig4 as f4
    d = {"g": np.array([0.0, 0.5]), "targets": np.array([1.0]), "seeds": np.array([0]),
         "sim_status": np.array([[["ok"]], [["ok"]]])}
    d["finite_n_status"] = np.array([["ok"], ["ok"]])
    for name in f4.QUANTITIES:
        d[f"sim_{name}"] = d[f"instance_{name}"] = np.ones((2, 1, 1))
        for m in ("ode", "series", "finite_n"):
            d[f"{m}_{name}"] = np.ones((2, 1))
        d[f"finite_n_{name}_std"] = np.ones((2, 1))
    text = FIGURES["fig4"].tables([], d)["fig4.csv"]
    assert "np." not in text
    row = text.splitlines()[1].split(",")
    assert row[:4] == ["sim", "0.0", "1.0", "0"]
