"""The README's usage example runs as written (in a temporary folder: it writes run.json)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    assert (tmp_path / "run.json").exists()
    printed = [float(x) for x in capsys.readouterr().out.split()]
    # theory vs one simulated network of N = 1024: within the finite-N spread of the
    # readout (standard deviation 0.04-0.08 along learning, docs/theory.md section 12)
    assert len(printed) == 2 and all(x < 0.2 for x in printed)
