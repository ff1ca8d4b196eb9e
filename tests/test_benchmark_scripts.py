"""Smoke run of scripts/benchmark_nonconvex.py on one real average (a few seconds).

Timings are printed, never asserted; what is checked is that both engines run
and that the script reports them side by side.
"""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_benchmark_nonconvex_runs_both_engines(sample_forward, capsys):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("benchmark_nonconvex",
                                                      SCRIPTS / "benchmark_nonconvex.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.main(["--repeat", "1", "--penalties", "mcp", "--fractions", "0.3",
                            "--conditions", "Right visual", "--no-sure"]) == 0
    finally:
        sys.path.remove(str(SCRIPTS))
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("mcp ")]
    assert len(row) == 1 and row[0].count("|") == 3
    assert "median ratio plain / Newton" in out
    from meeg_inverse.solvers import working_set
    assert working_set.NEWTON_STEPS  # restored
