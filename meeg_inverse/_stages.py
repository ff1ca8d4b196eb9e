"""``meeg-inverse localize`` as a light launcher and stages run one after the other.

Why: one process that solves (numba, MNE, scikit-learn) and then draws (VTK's
off-screen context, matplotlib) holds both at once — 550 MB for the 508-source
sample problem. Run in turn in child processes, the job's peak is that of the
larger stage, not their sum (issue 15: a default localize within 400 MB).

- The launcher (this process) parses and checks the options with the standard
  library only (bad options exit 2 in well under a second), reserves the output
  folder (:class:`meeg_inverse._output_dir.OutputFolder`: checked, locked,
  staged), runs the stages, and puts the result in place only when all of them
  succeeded.
- The **compute** stage reads, prepares, selects λ, solves, and writes the source
  estimate into the staging folder; with figures, it pickles what they are
  drawn from (:class:`meeg_inverse.outputs.FigureInputs`) there, else it writes
  ``summary.json``.
- The **figures** stage draws the figures, the viewer and the report, and writes
  ``summary.json``; it imports neither numba nor the solvers.

Each stage prints its progress lines (relayed through the launcher, so they go
where its own would) and reports its outcome in a small JSON file: an
:class:`~meeg_inverse.errors.InputError` reaches the user as the launcher's one
message (exit status 2), a bug as one ``failed: ...`` line (exit 1). Ctrl-C,
SIGTERM or SIGHUP — of the launcher or of a stage — stop the stage and leave no
output (the staging folder is removed); a stage whose launcher dies gets SIGTERM.
"""

import codecs
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .errors import InputError

#: Inside the staging folder; removed before it is put in place.
HANDOFF = ".meeg-inverse-figure-inputs.pkl"
OUTCOME = ".meeg-inverse-stage-outcome.json"
#: Seconds a stage is given to stop after the launcher was interrupted (then SIGKILL).
STOP_GRACE_S = 5.0
_PARENT_ENV = "MEEG_INVERSE_STAGE_PARENT"
# The child puts the package that runs the launcher first on its path: the same code,
# whatever the current folder or PYTHONPATH. Ctrl-C while it imports: no traceback (the
# launcher says it).
_BOOT = ("import sys\ntry:\n    sys.path.insert(0, sys.argv.pop(1))\n"
         "    from meeg_inverse._stages import stage_main\n"
         "    sys.exit(stage_main(sys.argv[1:]))\n"
         "except KeyboardInterrupt:\n    sys.exit(130)\n")


class StageFailed(RuntimeError):
    """A stage failed for another reason than bad input (exit status 1)."""

    def __init__(self, problem, fix=None):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


class StageInterrupted(KeyboardInterrupt):
    """A stage was stopped by a signal: unwinds as Ctrl-C (no output)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


# ----------------------------------------------------------------------------
# The launcher
# ----------------------------------------------------------------------------
def run_localize(args, argv, progress):
    """Run ``meeg-inverse localize`` (options ``args``, parsed from ``argv``) in stages.

    Returns
    -------
    summary : dict
        The result's ``summary.json``.
    paths : dict
        Name → path of each file written (as :func:`meeg_inverse.pipeline.write_outputs`).

    Raises
    ------
    InputError
        Bad input, found by the launcher or a stage.
    StageFailed
        A stage failed otherwise (its message says how).
    KeyboardInterrupt
        Ctrl-C, SIGTERM or SIGHUP; no output was written.
    """
    from ._output_dir import OutputFolder

    folder = OutputFolder(args.out, overwrite=args.overwrite).acquire()
    try:
        staging = folder.staging
        run_stage("compute", staging, argv)
        if (staging / HANDOFF).exists():  # figures asked for
            try:
                run_stage("figures", staging, argv)
                run_stage("report", staging, argv)
            finally:
                (staging / HANDOFF).unlink(missing_ok=True)
        progress.step("moving the outputs into place")
        folder.commit()
        progress.done()
    finally:
        folder.release()
    out = folder.path
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    paths = {name: ([out / f for f in files] if isinstance(files, list) else out / files)
             for name, files in summary.get("files", {}).items()}
    paths["summary"] = out / "summary.json"
    return summary, paths


def run_stage(stage, staging, argv):
    """Run one stage in a child process and wait for it; raise what it reported."""
    staging = Path(staging)
    root = str(Path(__file__).resolve().parents[1])
    from .progress import TERMINAL_ENV

    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1",
               **{_PARENT_ENV: str(os.getpid()),
                  TERMINAL_ENV: "1" if sys.stderr.isatty() else "0"})
    proc = subprocess.Popen([sys.executable, "-c", _BOOT, root, stage, str(staging), *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    relays = [_relay(proc.stdout, lambda: sys.stdout), _relay(proc.stderr, lambda: sys.stderr)]
    try:
        returncode = proc.wait()
    except BaseException as exc:  # Ctrl-C, SIGTERM/SIGHUP of the launcher, ...
        _stop(proc, getattr(exc, "signum", signal.SIGINT))
        raise
    finally:
        for relay in relays:
            relay.join(timeout=5)
    outcome = _read_outcome(staging)
    from ._cache_env import NOTES

    NOTES.extend(outcome.get("notes") or [])
    if returncode == 0:
        return
    if outcome.get("status") == "input":
        raise InputError(outcome["problem"], outcome.get("fix"))
    if outcome.get("status") == "failure":
        raise StageFailed(outcome["message"], "run again with --verbose for details; please "
                          "report it if it persists.")
    signum = -returncode if returncode < 0 else returncode - 128
    if signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        raise StageInterrupted(signum)
    try:
        how = f"was killed by {signal.Signals(signum).name}"
    except ValueError:
        how = f"exited with status {returncode}"
    hint = " (out of memory?)" if signum == signal.SIGKILL else ""
    raise StageFailed(f"the {stage} stage {how}{hint}; no output was written.",
                      "run again; with --no-figures if the figures stage was the one.")


def _relay(pipe, target):
    """Copy a child's output to ``target()`` as it comes (progress lines end in \\r or not)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def run():
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            text = decoder.decode(chunk, final=not chunk)
            if text:
                try:
                    stream = target()
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError):  # the reader went away: keep draining
                    pass
            if not chunk:
                break
        pipe.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _stop(proc, signum):
    """Stop a stage after the launcher was interrupted; it removes nothing itself.

    A terminal's Ctrl-C reaches the stage too (same process group): it is given a
    second to end by itself, then SIGTERM (the launcher alone was signalled);
    past :data:`STOP_GRACE_S`, SIGKILL.
    """
    try:
        if signum == signal.SIGINT:
            try:
                proc.wait(timeout=1.0)
                return
            except subprocess.TimeoutExpired:
                signum = signal.SIGTERM
        if proc.poll() is None:
            proc.send_signal(signum)
        proc.wait(timeout=STOP_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        pass
    proc.kill()
    proc.wait()


def _read_outcome(staging):
    path = Path(staging) / OUTCOME
    try:
        outcome = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    path.unlink(missing_ok=True)
    return outcome


# ----------------------------------------------------------------------------
# The stages (child processes)
# ----------------------------------------------------------------------------
def stage_main(argv):
    """Entry point of a stage: ``STAGE STAGING_FOLDER COMMAND-LINE...``; returns the status."""
    import traceback
    import warnings

    from . import cli
    from .progress import Progress

    stage, staging, cli_argv = argv[0], Path(argv[1]), argv[2:]
    _exit_with_launcher()
    _spawn_while_small()
    cli._install_signal_handlers()
    args = cli.build_parser().parse_args(cli_argv)
    progress = Progress(enabled=not args.quiet, warnings=True)
    outcome, status = {"status": "ok"}, 0
    try:
        import mne

        mne.set_log_level("INFO" if args.verbose else "ERROR")
        with warnings.catch_warnings():
            if not args.verbose:  # (with --verbose, Python shows every warning itself)
                show_warnings_once(progress)
            {"compute": _compute, "figures": _figures, "report": _report}[stage](
                args, staging, progress)
        progress.done()
    except InputError as exc:
        progress.done()
        outcome, status = {"status": "input", "problem": exc.problem, "fix": exc.fix}, 2
    except KeyboardInterrupt as exc:  # the launcher says it and removes the staging folder
        progress.done()
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    except Exception as exc:  # a bug or an environment problem: one plain line
        progress.done()
        if args.verbose:
            traceback.print_exc()
        outcome = {"status": "failure", "message": f"failed: {type(exc).__name__}: {exc}"}
        status = 1
    from ._cache_env import NOTES

    outcome["notes"] = list(dict.fromkeys(NOTES))
    (staging / OUTCOME).write_text(json.dumps(outcome), encoding="utf-8")
    return status


#: Categories of the libraries' notes to their developers, not to the user.
_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning,
                       ImportWarning, ResourceWarning, SyntaxWarning)
#: Starts of the warnings the command line reports in another way: the channel
#: report's lines, the summary's warnings (field cancellation), the refusal of an
#: empty estimate.
_REPORTED_OTHERWISE = ("The active sources' fields cancel", "No active source",
                       "the selected regularisation")
_REPORTED_OTHERWISE_WORDS = ("are not in the noise covariance and are left out",
                             "are not in the forward solution and are left out")


def show_warnings_once(progress):
    """Show each warning raised in this stage once, as ``meeg-inverse: warning: ...``.

    A stage's standard error is relayed to the user's console: the warnings of MNE and
    of this package (a small alpha's cost, a window before the stimulus, ...) reach the
    user there, even with ``--quiet``, once each, without a source line. Call it within
    ``warnings.catch_warnings()`` (which restores Python's own display).
    """
    import warnings

    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if (issubclass(category, _DEVELOPER_WARNINGS)
                or category.__module__.startswith("numba") or not text or text in seen
                or text.startswith(_REPORTED_OTHERWISE)
                or any(words in text for words in _REPORTED_OTHERWISE_WORDS)):
            return
        seen.add(text)
        progress.warn(text)

    warnings.simplefilter("always")  # each one reaches show(), which keeps the first
    warnings.showwarning = show


def _exit_with_launcher():
    """SIGTERM this stage when its launcher dies (Linux), and stop now if it is gone."""
    parent = int(os.environ.get(_PARENT_ENV, "0"))
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):  # not Linux: the launcher still stops it
        pass
    if parent and os.getppid() != parent:
        sys.exit(128 + int(signal.SIGTERM))


def _spawn_while_small():
    """Run now, while this process is small, what would fork it later when it is large.

    h5py's import (the stc's HDF5 file, the report) asks ``platform.processor()``,
    which runs ``uname -p`` in a subprocess; a fork of a 300 MB process counts
    twice in the process tree's memory while it lasts. The answer is cached.
    """
    import platform

    platform.processor()


def _compute(args, staging, progress):
    """Read, prepare, select λ, solve; write the estimate and hand the figures on."""
    from . import cli
    from .pipeline import ForwardSpec, _localize_file

    penalty_params = cli._check_localize_args(args)
    spec = ForwardSpec(forward=args.forward, subject=args.subject, subjects_dir=args.subjects_dir,
                       trans=args.trans, bem=args.bem, src=args.src, spacing=args.spacing,
                       montage=args.montage, montage_match=args.montage_match)

    class _Staged:  # the part of an OutputFolder the compute stage writes into
        path = None

    _Staged.staging = staging
    _localize_file(
        args.recording, _Staged, forward_spec=spec, noise_cov=args.noise_cov,
        empty_room=args.empty_room, condition=args.condition, events=args.events,
        epoch_tmin=args.epoch_tmin, epoch_tmax=args.epoch_tmax,
        baseline=None if args.no_baseline else (None, 0),
        reject=cli._parse_reject(args.reject, check_types=True),
        tmin=args.tmin, tmax=args.tmax, alpha=args.alpha, penalty=args.penalty,
        penalty_params=penalty_params, loose=args.loose, depth=args.depth,
        pick_ori=args.pick_ori, rank=args.rank, tol=args.tol, debias=not args.no_debias,
        random_state=args.seed, bads=args.bads, ch_types=cli._channel_types(args),
        sure_curve=args.sure_curve, figures=not args.no_figures, progress=progress,
        verbose=args.verbose, exclude=args.exclude, allow_missing_types=args.allow_missing_types,
        extra_files=None, staged=True)


def _figures(args, staging, progress):
    """Draw the figures and the viewer (VTK, matplotlib); the handoff gains their files."""
    progress.step("drawing figures")
    from .viz._render import get_backend

    get_backend()  # its check (a VTK subprocess) runs while this process is still small
    handoff = _load(staging)
    from . import outputs

    handoff["written"].update(outputs.draw_figures(staging, handoff["summary"],
                                                   handoff["inputs"]))
    _dump(handoff, staging)


def _report(args, staging, progress):
    """Write the report (an mne.Report: its imports alone are 40 MB) and ``summary.json``."""
    progress.step("writing the report")
    handoff = _load(staging)
    from . import outputs

    summary, written = handoff["summary"], handoff["written"]
    outputs.write_report(staging, summary, written, handoff["inputs"])
    outputs.write_summary(staging, summary, written)


def _load(staging):
    import pickle

    with open(Path(staging) / HANDOFF, "rb") as f:
        return pickle.load(f)  # written by the previous stage of this run


def dump_handoff(handoff, staging):
    """Pickle what the next stage needs into the staging folder (atomically)."""
    import pickle

    path = Path(staging) / HANDOFF
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(handoff, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


_dump = dump_handoff
