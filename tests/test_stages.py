"""``meeg-inverse localize`` in stages (issue 15's memory): a light launcher runs the
compute, figures and report stages one after the other in child processes.

What must hold whatever stage fails or is stopped: one message (exit 2 for bad
input, 1 for a bug or a killed stage, 128 + N for signal N), no traceback, no
output folder, no staging folder left, and a previous result untouched.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import sigint_as_at_a_terminal
from meeg_inverse.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fwd_file(sample_fwd_file):
    return sample_fwd_file


def _args(sample_paths, fwd_file, out, *extra):
    """A fast localization (25 samples, alpha 0.5) with figures."""
    return ["localize", str(sample_paths["evoked"]), "--condition", "Left Auditory",
            "--noise-cov", str(sample_paths["cov"]), "--forward", str(fwd_file),
            "--tmin", "0.08", "--tmax", "0.12", "--alpha", "0.5", "--out", str(out), "-q",
            *extra]


def _leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".meeg-inverse-")]


def _patch_outputs(name, body):
    """Stage-patch code replacing ``meeg_inverse.outputs.<name>`` by ``body`` (may call real)."""
    return ("import meeg_inverse.outputs as _o\n"
            f"real = _o.{name}\n"
            f"def _patched(*args, **kwargs):\n"
            + "".join(f"    {line}\n" for line in body.strip().splitlines())
            + f"_o.{name} = _patched\n")


def _rounded(obj, digits=12):
    """``obj`` (JSON) with every float rounded to ``digits`` significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits - 1}e}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


def test_stages_write_what_one_process_writes(sample_paths, fwd_file, tmp_path, monkeypatch):
    """The staged command and write_outputs in one process: the same files, the same bytes
    where the content is deterministic (the stc, the figures, the viewer)."""
    from meeg_inverse._blas import PIN_ENV
    from meeg_inverse.pipeline import ForwardSpec, localize_file

    # One BLAS thread in both runs (the stages inherit it): otherwise the thread count
    # follows the machine's load and moves the last bits between the two (seen in CI).
    monkeypatch.setenv(PIN_ENV, "1")

    staged = tmp_path / "staged"
    assert main(_args(sample_paths, fwd_file, staged)) == 0
    one = tmp_path / "one"
    localize_file(sample_paths["evoked"], one, condition="Left Auditory",
                  noise_cov=sample_paths["cov"], forward_spec=ForwardSpec(forward=fwd_file),
                  tmin=0.08, tmax=0.12, alpha=0.5)
    assert sorted(p.name for p in staged.iterdir()) == sorted(p.name for p in one.iterdir())
    for name in ("sources-lh.stc", "sources-rh.stc", "sources-stc.h5", "source_map.png",
                 "time_courses.png", "fit_residual.png", "viewer.html"):
        assert (staged / name).read_bytes() == (one / name).read_bytes(), name
    a, b = (json.loads((f / "summary.json").read_text()) for f in (staged, one))
    for s in (a, b):  # wall times differ from run to run
        s["solver"].pop("time_s")
    # The same summary to 12 significant digits: in CI (2 busy workers) the reported
    # sources' fitted amplitudes differed between the two runs in the 16th digit.
    assert _rounded(a) == _rounded(b)
    assert not _leftovers(tmp_path)


def test_launcher_stays_light(sample_paths, fwd_file, tmp_path):
    """The launcher imports neither numpy, MNE nor numba: its memory adds to each stage's."""
    out = tmp_path / "r"
    code = ("import sys; from meeg_inverse.cli import main; "
            f"status = main({_args(sample_paths, fwd_file, out, '--no-figures')!r}); "
            "print(status, sorted(m for m in ('numpy', 'mne', 'numba', 'matplotlib') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.stdout.split("\n")[-2] == "0 []", res.stdout + res.stderr
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("stage, patched", [("figures", "draw_figures"),
                                            ("report", "write_report")])
def test_bad_input_in_a_later_stage_exits_2_without_output(sample_paths, fwd_file, tmp_path,
                                                           capsys, stage_patch, stage,
                                                           patched):
    stage_patch(_patch_outputs(patched, """
from meeg_inverse.errors import InputError
raise InputError("Simulated bad input in the %s stage.", "a simulated fix.")
""" % stage))
    out = tmp_path / "r"
    assert main(_args(sample_paths, fwd_file, out)) == 2
    err = capsys.readouterr().err
    assert f"Simulated bad input in the {stage} stage." in err and "Fix: a simulated fix." in err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert not out.exists() and not _leftovers(tmp_path)


def test_a_bug_in_a_stage_exits_1_with_one_line(sample_paths, fwd_file, tmp_path, capsys,
                                                stage_patch):
    stage_patch(_patch_outputs("draw_figures", "raise RuntimeError('simulated bug')"))
    out = tmp_path / "r"
    assert main(_args(sample_paths, fwd_file, out)) == 1
    err = capsys.readouterr().err
    assert "failed: RuntimeError: simulated bug" in err and "--verbose" in err
    assert "Traceback" not in err
    assert not out.exists() and not _leftovers(tmp_path)


def test_a_failing_stage_leaves_the_previous_result_untouched(sample_paths, fwd_file,
                                                              tmp_path, capsys, stage_patch):
    out = tmp_path / "r"
    assert main(_args(sample_paths, fwd_file, out, "--no-figures")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    stage_patch(_patch_outputs("write_report", "raise RuntimeError('simulated bug')"))
    assert main(_args(sample_paths, fwd_file, out, "--overwrite")) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("sig, status, words", [
    (signal.SIGTERM, 128 + signal.SIGTERM, "interrupted (SIGTERM); no output was written"),
    (signal.SIGKILL, 1, "the figures stage was killed by SIGKILL (out of memory?)"),
])
def test_a_stage_killed_by_a_signal_leaves_no_output(sample_paths, fwd_file, tmp_path, capsys,
                                                     stage_patch, sig, status, words):
    # The stage is killed with half of the result written (the figures drawn so far).
    stage_patch(_patch_outputs("draw_figures", f"""
import os
(args[0] / "source_map.png").write_bytes(b"half")
os.kill(os.getpid(), {int(sig)})
import time; time.sleep(60)
"""))
    out = tmp_path / "r"
    assert main(_args(sample_paths, fwd_file, out)) == status
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists() and not _leftovers(tmp_path)


def _launch_and_wait_for_the_stage(sample_paths, fwd_file, tmp_path, stage_patch):
    """The command in a fresh process, its compute stage held after writing the estimate."""
    marker = tmp_path / "stage.pid"
    stage_patch(_patch_outputs("write_estimate", f"""
written = real(*args, **kwargs)
import os, pathlib, time
pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))
time.sleep(120)
return written
"""))
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "meeg_inverse.cli",
                             *_args(sample_paths, fwd_file, out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_at_a_terminal)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    staging = [p for p in tmp_path.iterdir() if p.name.startswith(".meeg-inverse-partial-")]
    assert staging and (staging[0] / "sources-stc.h5").exists()  # half the result written
    return proc, int(marker.read_text()), out


def _gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM to the launcher", "Ctrl-C (SIGINT to the group)",
                                 "SIGINT to the launcher alone"])
def test_stopping_the_launcher_stops_the_stage_and_leaves_no_output(sample_paths, fwd_file,
                                                                    tmp_path, stage_patch, how):
    proc, stage_pid, out = _launch_and_wait_for_the_stage(sample_paths, fwd_file, tmp_path,
                                                          stage_patch)
    sig = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
    if how.startswith("Ctrl-C"):
        os.killpg(proc.pid, sig)  # what a terminal does on Ctrl-C
    else:
        proc.send_signal(sig)  # the stage is stopped by the launcher
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (128 + sig, -sig), stderr
    assert f"interrupted ({signal.Signals(sig).name}); no output was written" in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert _gone(stage_pid)
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.slow
def test_a_stage_ends_when_its_launcher_is_killed(sample_paths, fwd_file, tmp_path,
                                                  stage_patch):
    """SIGKILL of the launcher (no cleanup possible there): its stage gets SIGTERM, and the
    next run into the folder removes the staging folder left behind."""
    proc, stage_pid, out = _launch_and_wait_for_the_stage(sample_paths, fwd_file, tmp_path,
                                                          stage_patch)
    proc.kill()
    proc.communicate(timeout=60)
    assert _gone(stage_pid)
    assert not out.exists()
    stage_patch("")
    assert main(_args(sample_paths, fwd_file, out, "--no-figures")) == 0
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("penalty, gamma", [("scad", "1"), ("scad", "2"), ("mcp", "0"),
                                            ("log", "-1"), ("mcp", "inf"), ("mcp", "nan")])
def test_gamma_range_is_refused_by_the_launcher(sample_paths, fwd_file, tmp_path, penalty,
                                                gamma):
    """A bad --gamma is refused before any stage starts: one message, exit 2, no
    numpy/numba imported, no output."""
    out = tmp_path / "r"
    code = ("import sys; from meeg_inverse.cli import main; "
            f"status = main({_args(sample_paths, fwd_file, out, '--penalty', penalty, '--gamma', gamma)!r}); "
            "print(status, sorted(m for m in ('numpy', 'mne', 'numba') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.stdout.split("\n")[-2] == "2 []", res.stdout + res.stderr
    assert "--gamma" in res.stderr and "Fix:" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and not _leftovers(tmp_path)


def test_shape_parameter_bounds_are_the_penalties():
    """The launcher's bound of each shape parameter is the one the penalty enforces."""
    from meeg_inverse._choices import SHAPE_PARAMETER_BOUND
    from meeg_inverse.penalties import make_penalty

    for name, bound in SHAPE_PARAMETER_BOUND.items():
        key = "eps" if name == "log" else "gamma"
        with pytest.raises(ValueError):
            make_penalty(name, 1.0, **{key: bound})
        make_penalty(name, 1.0, **{key: bound + 1e-3})


def test_penalty_names_of_the_launcher_are_the_penalties():
    from meeg_inverse._choices import PENALTY_NAMES
    from meeg_inverse.penalties import PENALTIES

    assert sorted(PENALTY_NAMES) == sorted(PENALTIES)
