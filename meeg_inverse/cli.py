"""The ``meeg-inverse`` command line."""

import argparse
import json
import math
import os
import signal
import sys
import textwrap
import time
import traceback
import warnings
from pathlib import Path

from .errors import InputError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
#: Loosest --tol: the solver stops at a relative duality gap below it (above 1 %, before
#: the sources are found).
MAX_TOL = 1e-2
#: Longest epoch window (s) cut from a raw recording: longer ones are times given in ms.
MAX_EPOCH_S = 60.0
# Penalties with a shape parameter, and the name each gives it (--gamma sets it).
SHAPE_PARAMETER = {"mcp": "gamma", "scad": "gamma", "log": "eps"}
# weighted_l21 needs per-source weights, which a command line cannot pass.
API_ONLY_PENALTIES = {"weighted_l21"}


class _UsageError(Exception):
    """argparse's complaint about the command line (exit 2, as argparse)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message}", self.format_usage())


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so staging folders are removed."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

LOCALIZE_EXAMPLES = textwrap.dedent("""\
    examples:
      # an evoked file with its covariance and forward solution
      meeg-inverse localize sample-ave.fif --condition "Left Auditory" \\
          --noise-cov sample-cov.fif --forward sample-fwd.fif --out results/

      # a raw recording: events from the stim channel, noise from the baseline,
      # forward model built from the subject's MRI
      meeg-inverse localize sub01_raw.fif --subject sub01 --subjects-dir ~/subjects \\
          --trans sub01-trans.fif --tmin 0.05 --tmax 0.15 --alpha 0.3

      # EEG without MRI: template head (fsaverage), channel positions from a file
      # matched by order (a fixed --alpha 0.4 with --penalty mcp kept 46 sources from
      # 30 electrodes, explaining 100 %: noise too; the default keeps 4)
      meeg-inverse localize data.set --montage chans.locs --montage-match order
    """)


def _parse_reject(text, check_types=False):
    """--reject as a dict; ``check_types`` (in a stage: it imports MNE) also checks
    the channel types and limits."""
    if text is None:
        return None
    reject = {}
    for item in text.split(","):
        try:
            key, value = item.split("=")
            reject[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"Cannot read --reject {text!r}.",
                             "write it as TYPE=VALUE pairs, e.g. eeg=150e-6,grad=4000e-13,mag=4e-12.") from None
    if not check_types:
        return reject
    from mne.io import get_channel_type_constants

    known = get_channel_type_constants()
    for key, value in reject.items():
        if key not in known:
            raise InputError(f"--reject names an unknown channel type {key!r}.",
                             "use MNE's channel types, e.g. eeg=150e-6,grad=4000e-13,mag=4e-12.")
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"--reject {key}={value:g}: a peak-to-peak limit must be positive.",
                             f"give e.g. {key}=150e-6 (volts for eeg, T/m for grad, T for mag).")
    return reject


def _parse_alpha(text):
    if text in ("auto", "bic", "qut", "sure"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a rule (auto, bic, qut, sure) nor a number (a fraction of "
            "lambda_max, e.g. 0.3)") from None


def _parse_rank(value):
    """'info', 'full', or per channel type as MNE's rank dict: 'meg=303,eeg=59'."""
    if value in ("info", "full"):
        return value
    rank = {}
    for item in value.split(","):
        kind, _, number = item.partition("=")
        try:
            rank[kind.strip()] = int(number)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--rank must be 'info', 'full' or like 'meg=303,eeg=59', got {value!r}") from None
        if kind.strip() not in ("meg", "eeg", "mag", "grad") or rank[kind.strip()] < 1:
            raise argparse.ArgumentTypeError(
                f"--rank: channel type {kind!r} must be meg, eeg, mag or grad with a rank "
                f">= 1, got {item!r}")
    return rank


def _parse_loose(text):
    return text if text == "auto" else float(text)


def _penalty_choices():
    from ._choices import PENALTY_NAMES  # not .penalties: that imports numba

    return sorted(PENALTY_NAMES)


def build_parser():
    """The argument parser of ``meeg-inverse``."""
    parser = _Parser(
        prog="meeg-inverse",
        description="Sparse M/EEG source localization: which parts of the brain produced "
                    "the signals in a recording.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    loc = sub.add_parser(
        "localize", help="localize the sources of a recording",
        description="Localize the sources of a recording (raw, epochs or evoked; any format "
                    "MNE reads) and write a source estimate, a JSON summary and figures.",
        epilog=LOCALIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    loc.add_argument("recording", help="raw file (FIF, EDF, BDF, BrainVision, EEGLAB, CTF, ...), "
                                       "epochs (-epo.fif) or evoked (-ave.fif)")
    loc.add_argument("--out", "-o", default="meeg_inverse_output",
                     help="output folder (default: %(default)s); a previous result there "
                          "is only replaced with --overwrite")
    loc.add_argument("--overwrite", action="store_true",
                     help="replace a previous result in --out as a whole")
    g = loc.add_argument_group("data")
    g.add_argument("--condition", help="condition (event name/code, or evoked comment) to localize")
    g.add_argument("--events", help="events file (-eve.fif) for a raw recording")
    # Raw recordings only: None (not the value) when not given, so that a value given with
    # an epochs or evoked file is refused instead of ignored.
    g.add_argument("--epoch-tmin", type=float, default=None,
                   help="epoch start, s (default -0.2; raw recordings only)")
    g.add_argument("--epoch-tmax", type=float, default=None,
                   help="epoch end, s (default 0.5; raw recordings only)")
    g.add_argument("--no-baseline", action="store_true", help="no baseline correction of the epochs (nor of an evoked file saved without one)")
    g.add_argument("--reject", help="peak-to-peak rejection of epochs (raw recordings and "
                   "epochs files), e.g. eeg=150e-6,grad=4000e-13")
    g.add_argument("--tmin", type=float, help="start of the time window to localize, s")
    g.add_argument("--tmax", type=float, help="end of the time window to localize, s "
                   "(default window: from the stimulus, 0 s, to the end)")
    g.add_argument("--allow-prestimulus", action="store_true",
                   help="localize a window that ends before the stimulus (default: refused, "
                        "the pre-stimulus baseline is the noise reference)")
    g.add_argument("--exclude", help="channels to leave out, comma-separated "
                   "(e.g. EOG1,EOG2 for eye electrodes stored as EEG)")
    g.add_argument("--allow-missing-types", action="store_true",
                   help="localize even when the forward solution or noise covariance lacks a "
                        "whole channel type of the recording (default: refuse)")
    g = loc.add_argument_group("noise covariance (default: the epochs' pre-stimulus baseline)")
    g.add_argument("--noise-cov", help="noise covariance file (-cov.fif)")
    g.add_argument("--empty-room", help="empty-room raw recording to estimate it from")
    g = loc.add_argument_group(
        "forward model (default: the fsaverage template head)")
    g.add_argument("--forward", help="forward solution (-fwd.fif)")
    g.add_argument("--subject", help="FreeSurfer subject, to build the forward model (with "
                   "--subjects-dir and --trans). With --forward: only checked, it must be "
                   "the forward's subject (the one whose MRI in --subjects-dir gives the "
                   "sources' MNI positions and labels, with or without --subject)")
    g.add_argument("--subjects-dir", help="FreeSurfer subjects folder")
    g.add_argument("--trans", help="head<->MRI transform (-trans.fif) to build the forward "
                   "with --subject; with --bem also that of the dipole fits (default there: "
                   "the forward's). Refused where it would have no effect")
    g.add_argument("--bem", help="BEM solution (-bem-sol.fif) to build the forward with "
                   "--subject (default: the subject's). With --forward or the template: the "
                   "reported sources are placed by dipole fits with it (default: with the "
                   "BEM the forward names, when it does; with --continuous a one-layer BEM "
                   "fits the MEG channels only)")
    g.add_argument("--src", help="source space file (-src.fif) to build the forward with "
                   "--subject")
    g.add_argument("--spacing", help="source spacing of a forward built here: oct6, ico4, "
                   "... or vol5 (volume, 5 mm)")
    g.add_argument("--montage", help="EEG montage name (standard_1005, ...) or file")
    g.add_argument("--montage-match", choices=("name", "order"), default="name",
                   help="match montage to channels by name (ignoring prefixes/suffixes such "
                        "as 'EEG ' and '-Ref') or by order (default name)")
    g.add_argument("--bads", help="channels to leave out, e.g. T7,T8")
    g.add_argument("--eog", help="channels that are EOG leads (typed EEG in some files), "
                                 "e.g. HEOG,VEOG")
    g.add_argument("--ch-types", help="channel types, e.g. HEOG=eog,ECG=ecg")
    g = loc.add_argument_group("inverse")
    g.add_argument("--penalty", default=None,
                   help="l21 (MxNE), l1, mcp, scad, l05, l23, log, irmxne "
                        "(reweighted L2,1 as MNE's irMxNE); default l05 with --alpha auto "
                        "(l21 with --continuous), l21 otherwise; weighted_l21 needs per-source "
                        "weights: Python API only")
    g.add_argument("--alpha", type=_parse_alpha, default="auto",
                   help="regularization: 'auto' (default) picks it for a few reliable sources "
                        "(BIC of the refit along the penalty's path, L0.5 by default, never "
                        "fitting below the noise level); 'qut' the quantile universal "
                        "threshold; 'sure' Stein's "
                        "unbiased risk (best prediction, many weak sources); a number is a "
                        "fraction of lambda_max in (0, 1)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of SURE's random direction and of the confidence's "
                        "resamples (default 0)")
    g.add_argument("--sure-curve", action="store_true",
                   help="with --alpha sure, also evaluate SURE on a 30-point grid for the "
                        "λ curve figure (lambda_curve.png)")
    g.add_argument("--gamma", type=float,
                   help="shape parameter of mcp (> 0, default 3), scad (> 2, default 3.7) "
                        "and log (epsilon > 0, default 1)")
    g.add_argument("--loose", type=_parse_loose, default="auto",
                   help="orientation: 0 fixed, 1 free, between: loose (default auto = 0.2 on "
                        "surfaces, 1 in volumes)")
    g.add_argument("--depth", type=float, default=0.8,
                   help="depth weighting exponent, in [0, 1] (0.8; 0: none)")
    g.add_argument("--pick-ori", choices=("vector",), help="write xyz source components")
    g.add_argument("--tol", type=float, default=1e-6,
                   help="solver tolerance, in (0, 0.01] (1e-6)")
    g.add_argument("--rank", type=_parse_rank, default=None,
                   help="rank of the noise covariance: 'info', 'full' or per channel type, "
                        "e.g. meg=303,eeg=59 (default: estimated, as MNE's rank=None)")
    g.add_argument("--no-debias", action="store_true",
                   help="keep the penalty's amplitude shrinkage (default: debias the "
                        "amplitudes, as mixed_norm(debias=True))")
    g = loc.add_argument_group(
        "continuous recordings (every window of a raw recording; needs --noise-cov, "
        "--empty-room or --noise-segment)")
    g.add_argument("--continuous", action="store_true",
                   help="localize every window of the raw recording (bounded memory)")
    g.add_argument("--window", type=float, default=None, help="window length, s (0.1)")
    g.add_argument("--step", type=float, default=None, help="step between windows, s (0.05)")
    g.add_argument("--l-freq", type=float, help="high-pass edge of a band-pass, Hz")
    g.add_argument("--h-freq", type=float, help="low-pass edge of a band-pass, Hz")
    g.add_argument("--n-jobs", type=int, default=None, help="processes (1; -1: all cores)")
    g.add_argument("--noise-segment",
                   help="a quiet segment START,STOP (s): noise level (and the covariance, "
                        "without --noise-cov / --empty-room)")
    g = loc.add_argument_group("output")
    g.add_argument("--no-figures", action="store_true", help="skip the figures")
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    g.add_argument("--verbose", "-v", action="store_true", help="MNE's messages and tracebacks")

    demo = sub.add_parser(
        "demo", help="run the built-in example (no files needed)",
        description="Simulate two sources (left motor, right occipital) on the fsaverage template head with a "
                    "64-electrode EEG cap, localize them, and write the outputs.",
        epilog="example:\n  meeg-inverse demo --out demo_output/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--out", "-o", default="meeg_inverse_demo", help="output folder")
    demo.add_argument("--overwrite", action="store_true",
                      help="replace a previous result in --out as a whole")
    demo.add_argument("--penalty", default=None,
                      help="penalty (default l05 with --alpha auto, l21 otherwise)")
    demo.add_argument("--alpha", type=_parse_alpha, default="auto",
                      help="'auto' (default), 'bic', 'qut', 'sure' or a fraction of lambda_max")
    demo.add_argument("--snr", type=float, default=10.0, help="peak signal-to-noise ratio (10)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (0)")
    demo.add_argument("--no-figures", action="store_true", help="skip the figures")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--quiet", "-q", action="store_true")
    demo.add_argument("--verbose", "-v", action="store_true")
    view = sub.add_parser(
        "view", help="open the 3D viewer of a result",
        description="Open the interactive 3D viewer (viewer.html) of a result folder in the "
                    "web browser, or with --show a live pyvista window (needs a display).",
        epilog="examples:\n  meeg-inverse view meeg_inverse_output/\n"
               "  meeg-inverse view meeg_inverse_output/ --show --src sample-src.fif",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    view.add_argument("result", help="result folder (or its viewer.html)")
    view.add_argument("--show", action="store_true", help="live window instead of the browser")
    view.add_argument("--src", help="source space file, needed by --show")
    view.add_argument("--subjects-dir", help="FreeSurfer subjects folder (surfaces for --show)")
    view.add_argument("--quiet", "-q", action="store_true")
    view.add_argument("--verbose", "-v", action="store_true")
    fetch = sub.add_parser(
        "fetch", help="download a data set (MNE sample, somato, fsaverage, EEGLAB sample)",
        description="Download a data set into the cache folder (default ~/mne_data, or "
                    "$MEEG_INVERSE_DATA, or MNE's MNE_DATA), with checksums and resume.",
        epilog="examples:\n  meeg-inverse fetch --list\n  meeg-inverse fetch sample\n"
               "  meeg-inverse fetch eeglab --path ./data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("name", nargs="?", help="sample, somato, fsaverage or eeglab")
    fetch.add_argument("--list", action="store_true", help="list the data sets")
    fetch.add_argument("--path", help="cache folder")
    fetch.add_argument("--base-url", help="mirror to download from")
    fetch.add_argument("--force", action="store_true", help="download again")
    fetch.add_argument("--json", action="store_true", help="print the result as JSON")
    fetch.add_argument("--quiet", "-q", action="store_true")
    fetch.add_argument("--verbose", "-v", action="store_true")

    coh = sub.add_parser(
        "cohort", help="localize every subject of a BIDS dataset on a Dask cluster",
        description="Localize every (subject, session, run, condition) of a BIDS task, one "
                    "Dask task each, on a local cluster (--workers) or a running scheduler "
                    "(--scheduler). Outputs go to BIDS_ROOT/derivatives/meeg-inverse; a rerun "
                    "skips what is up to date; a group summary (sources table, figure, report "
                    "page) is written in its group/ folder.",
        epilog="examples:\n  meeg-inverse cohort ds000248/ --task audiovisual --workers 4\n"
               "  meeg-inverse cohort ds/ --task oddball --conditions square "
               "--montage caps.locs --montage-match order\n"
               "  meeg-inverse cohort ds/ --task rest --scheduler tcp://10.0.0.5:8786",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    coh.add_argument("bids_root", help="root folder of the BIDS dataset")
    coh.add_argument("--task", required=True, help="BIDS task label (task-<label>)")
    coh.add_argument("--subjects", nargs="+", help="subject labels (without sub-; default all)")
    coh.add_argument("--sessions", nargs="+", help="session labels (default all)")
    coh.add_argument("--conditions", nargs="+",
                     help="trial_type values of the events files (default all)")
    g = coh.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None,
                   help="workers of a local Dask cluster (default: the CPU count; 0: no "
                        "Dask, one task after the other)")
    g.add_argument("--scheduler", help="address of a running Dask scheduler")
    coh.add_argument("--force", action="store_true", help="redo the tasks even when up to date")
    coh.add_argument("--out", help="derivatives folder (default BIDS_ROOT/derivatives/meeg-inverse)")
    coh.add_argument("--subjects-dir", help="FreeSurfer subjects folder (default "
                                            "BIDS_ROOT/derivatives/freesurfer)")
    coh.add_argument("--forward", help="forward file of each subject, a pattern relative to "
                                       "BIDS_ROOT with {subject} and {session}")
    coh.add_argument("--spacing", help="source spacing when the forward is built")
    coh.add_argument("--montage", help="electrode positions for EEG without any")
    coh.add_argument("--montage-match", choices=("name", "order"), default="name")
    coh.add_argument("--epoch-tmin", type=float, default=-0.2)
    coh.add_argument("--epoch-tmax", type=float, default=0.5)
    coh.add_argument("--tmin", type=float, help="start of the time window to localize, s")
    coh.add_argument("--tmax", type=float, help="end of the time window to localize, s")
    coh.add_argument("--alpha", type=_parse_alpha, default="auto",
                     help="'auto' (default), 'bic', 'qut', 'sure' or a fraction of lambda_max")
    coh.add_argument("--penalty", default=None, help="penalty (default as localize)")
    coh.add_argument("--loose", type=_parse_loose, default="auto")
    coh.add_argument("--depth", type=float, default=0.8)
    coh.add_argument("--confidence", type=int, default=None,
                     help="resamples for each source's confidence (0: none)")
    coh.add_argument("--seed", type=int, default=0, help="random seed (0)")
    coh.add_argument("--no-figures", action="store_true",
                     help="no figures, viewer or report per localization")
    coh.add_argument("--json", action="store_true", help="print the task statuses as JSON")
    coh.add_argument("--quiet", "-q", action="store_true")
    coh.add_argument("--verbose", "-v", action="store_true")

    bench = sub.add_parser(
        "benchmark", help="run the solver benchmark (ours vs MNE, skglm, celer, scikit-learn)",
        description="Run scripts/benchmark_solvers.py of a source checkout; its options "
                    "follow (e.g. --quick, --repeats N).",
        epilog="example:\n  meeg-inverse benchmark --quick",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options of the benchmark script")
    bench.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument("--verbose", "-v", action="store_true", help=argparse.SUPPRESS)
    return parser


def _run_fetch(args):
    import data_fetchers

    if args.list or args.name is None:
        datasets = data_fetchers.list_datasets()
        if args.json:
            print(json.dumps(datasets, indent=2, default=str))
        else:
            for name, meta in datasets.items():
                print(f"{name:10s} {meta.get('size', '?'):>10s}  {meta.get('description', '')}")
        return
    if args.name not in data_fetchers.list_datasets():
        raise InputError(f"Unknown data set {args.name!r}.",
                         f"choose one of: {', '.join(data_fetchers.list_datasets())}.")
    if args.path is not None:
        _check_fetch_folder(args.path)
    try:
        path = data_fetchers.fetch_dataset(args.name, args.path, base_url=args.base_url,
                                           force=args.force, progress=not args.quiet)
    except data_fetchers.DatasetError as exc:
        raise _DatasetFailure(str(exc)) from None
    print(json.dumps({"name": args.name, "path": str(path)}) if args.json else str(path))


def _check_fetch_folder(path):
    """--path must be a folder, or one that can be made: refused before any download."""
    folder = Path(path).expanduser().absolute()
    if not str(path).strip():
        raise InputError("--path is empty.", "give a folder, e.g. --path ~/mne_data.")
    for place in (folder, *folder.parents):
        if not os.path.lexists(place):
            continue
        if place.is_dir():
            return
        what = "a file" if place.is_file() else "not a folder"
        where = ("" if place == folder else
                 f": {str(place)!r} (a folder above it) is {what}")
        raise InputError(f"--path {str(path)!r} is {what if place == folder else 'unusable'}"
                         f"{where}; a data set is downloaded into a folder.",
                         f"give a folder (made if missing), e.g. --path "
                         f"{str(place.parent / 'mne_data')!r}.")


class _DatasetFailure(RuntimeError):
    """A download failed (network, checksum): exit status 1, message as is."""


def _run_benchmark(args):
    import runpy

    script = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_solvers.py"
    if not script.exists():
        raise InputError("The benchmark script is not installed with the package.",
                         "run it from a source checkout: python scripts/benchmark_solvers.py.")
    argv = sys.argv
    sys.argv = [str(script), *args.options]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:  # the script's own usage errors and missing-data message
        if exc.code not in (None, 0):
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    finally:
        sys.argv = argv
    return EXIT_OK


def _run_view(args):
    from .io import read_checked
    from .viz import open_viewer, show_live

    result = Path(args.result)
    if not result.exists():
        raise InputError(f"The result {str(result)!r} does not exist.",
                         "give the output folder of `meeg-inverse localize`.")
    if result.is_file() and result.suffix.lower() not in (".html", ".htm"):
        # A file of a result (summary.json, a figure): its folder's viewer.
        if not any((result.parent / n).exists() for n in ("viewer.html", "index.html")):
            raise InputError(f"{str(result)!r} is neither a result folder nor a viewer page.",
                             "give the output folder of `meeg-inverse localize` (or its "
                             "viewer.html).")
        result = result.parent
    if not args.show:
        try:
            uri = open_viewer(result)
        except FileNotFoundError:
            raise InputError(f"No viewer.html in {str(result)!r}.",
                             "run `meeg-inverse localize` without --no-figures.") from None
        if uri is None:
            raise _EnvironmentFailure(
                "no web browser could be opened (no display, or none installed).\n"
                f"  Open this file in a browser yourself: {_viewer_file(result)}")
        if not args.quiet:
            print(f"opened {uri}")
        return EXIT_OK
    import mne

    folder = result if result.is_dir() else result.parent
    h5 = folder / "sources-stc.h5"
    if not h5.exists():
        raise InputError(f"No sources-stc.h5 in {str(folder)!r}.", "give a result folder.")
    if args.src is None:
        raise InputError("--show needs the source space of the result.", "add --src FILE.")
    stc = read_checked(mne.read_source_estimate, h5, "source estimate",
                       "give the folder of a complete result.")
    src = read_checked(mne.read_source_spaces, args.src, "source space",
                       "give the -src.fif file the forward solution was computed with.",
                       verbose=False)
    # Opens where the figures were drawn: at the strongest reported source's peak.
    summary_file = folder / "summary.json"
    reported = (json.loads(summary_file.read_text(encoding="utf-8")).get("reported_sources")
                if summary_file.is_file() else None)
    try:
        show_live(stc, src, subject=stc.subject, subjects_dir=args.subjects_dir,
                  reported=reported)
    except RuntimeError as exc:
        raise InputError(str(exc), "use `meeg-inverse view RESULT` (browser) instead.") from None
    return EXIT_OK


def _viewer_file(result):
    for name in ("viewer.html", "index.html"):
        if (result / name).exists():
            return (result / name).resolve()
    return result.resolve()


class _EnvironmentFailure(RuntimeError):
    """Not a bug and not bad input (no browser, ...): exit status 1, message as is."""


def _version():
    from . import __version__

    return f"meeg-inverse {__version__}"


def _channel_types(args):
    """--eog and --ch-types as one name → type mapping."""
    from .channels import _split_list

    types = {name: "eog" for name in _split_list(args.eog)}
    if args.ch_types:
        for item in _split_list(args.ch_types):
            name, sep, kind = item.partition("=")
            if not sep or not name.strip() or not kind.strip():
                raise InputError(f"Cannot read --ch-types {args.ch_types!r}.",
                                 "write NAME=TYPE pairs, e.g. --ch-types HEOG=eog,ECG=ecg.")
            types[name.strip()] = kind.strip().lower()
    return types or None


def _finite(value, option):
    if value is not None and not math.isfinite(value):
        raise InputError(f"{option} must be a finite number, got {value}.",
                         f"give a number, e.g. {option} 0.1.")


def _check_penalty(args):
    """The penalty, its shape parameter and alpha, checked before any file is read
    (without numpy: the launcher of :mod:`meeg_inverse._stages` stays light)."""
    penalty = args.penalty
    if penalty is None:  # the λ rule's default penalty
        from ._choices import resolve_penalty

        penalty = resolve_penalty(None, args.alpha)
    if args.penalty in API_ONLY_PENALTIES:
        raise InputError(f"--penalty {args.penalty} needs per-source weights, which the "
                         "command line cannot pass.",
                         "use --penalty l21 here, or the Python API: sparse_inverse(..., "
                         "penalty='weighted_l21', weights=...).")
    if penalty not in _penalty_choices():
        raise InputError(f"Unknown penalty {args.penalty!r}.", "choose one of: " + ", ".join(
            p for p in _penalty_choices() if p not in API_ONLY_PENALTIES) + ".")
    if isinstance(args.alpha, float) and not 0 < args.alpha < 1:
        raise InputError(f"--alpha {args.alpha} is outside (0, 1): alpha is a fraction of "
                         "lambda_max (at 1 or more no source is active).",
                         "use e.g. --alpha 0.3, or --alpha auto to choose it automatically.")
    from ._choices import ALPHA_FRACTION_FLOOR

    if isinstance(args.alpha, float) and args.alpha < ALPHA_FRACTION_FLOOR:
        raise InputError(f"--alpha {args.alpha:g} is below the floor of "
                         f"{ALPHA_FRACTION_FLOOR:g} x lambda_max: the estimate would be an "
                         "almost unregularized fit with hundreds of active sources, and its "
                         "solve unbounded.",
                         "use --alpha between 0.01 and 0.9 (e.g. 0.3), or --alpha auto to "
                         "choose it automatically.")
    params = {}
    gamma = getattr(args, "gamma", None)
    if gamma is not None:
        if penalty not in SHAPE_PARAMETER:
            raise InputError(f"--gamma does not apply to --penalty {penalty}: it sets the "
                             f"shape of {', '.join(SHAPE_PARAMETER)} only.",
                             f"drop --gamma, or choose one of {', '.join(SHAPE_PARAMETER)}.")
        params[SHAPE_PARAMETER[penalty]] = gamma
        from ._choices import check_shape_parameter

        try:
            check_shape_parameter(penalty, gamma)
        except ValueError as exc:
            raise InputError(f"Bad --gamma for --penalty {penalty}: {exc}.",
                             "see `meeg-inverse localize --help` for the allowed range.") from None
    return params


def _check_localize_args(args):
    """Refuse bad option values at once, before any file is read."""
    from ._output_dir import resolve_output_dir

    resolve_output_dir(args.out)
    for option in ("tol", "depth", "tmin", "tmax", "epoch_tmin", "epoch_tmax"):
        _finite(getattr(args, option), "--" + option.replace("_", "-"))
    if not 0 < args.tol <= MAX_TOL:
        raise InputError(f"--tol must be in (0, {MAX_TOL:g}], got {args.tol:g}: the solver "
                         "stops when its relative duality gap falls below --tol"
                         + (", so a tolerance this loose stops it before the sources are "
                            "found." if args.tol > 0 else "."),
                         "use the default 1e-6, or e.g. 1e-8 for a tighter solution (1e-4 "
                         "for a faster, rougher one).")
    if not 0 <= args.depth <= 1:
        raise InputError(f"--depth must be in [0, 1], got {args.depth:g}: it is the exponent "
                         "of MNE's depth weighting (compute_depth_prior's exp, documented in "
                         "[0, 1]; 1 already fully compensates the weaker fields of deep "
                         "sources).",
                         "use 0.8 (MNE's default), 0 for no depth weighting, or a value "
                         "between.")
    if not isinstance(args.loose, str) and not 0 <= args.loose <= 1:
        raise InputError(f"--loose must be in [0, 1] or 'auto', got {args.loose}.",
                         "use 0 (fixed), 0.2 (loose), 1 (free) or auto.")
    if args.pick_ori == "vector" and args.loose == 0:
        raise InputError("--pick-ori vector writes the x, y, z components of each source, but "
                         "--loose 0 fixes every source's orientation: there is one component.",
                         "drop --pick-ori vector, or give --loose 0.2 (loose) or 1 (free).")
    if (not args.continuous and args.tmax is not None and args.tmax <= 0
            and not args.allow_prestimulus):
        window = (f"--tmin {args.tmin:g} --tmax {args.tmax:g}" if args.tmin is not None
                  else f"--tmax {args.tmax:g}")
        raise InputError(f"The time window ({window}) ends at or before the stimulus (0 s): "
                         "the pre-stimulus baseline holds no response to the stimulus, so its "
                         "sources would be noise (it is the noise reference).",
                         "choose a window after the stimulus, e.g. --tmin 0.05 --tmax 0.15 "
                         "(times are in seconds); to localize pre-stimulus activity on "
                         "purpose, add --allow-prestimulus.")
    if args.tmin is not None and args.tmax is not None and args.tmin > args.tmax:
        raise InputError(f"The time window is empty: --tmin {args.tmin} is after "
                         f"--tmax {args.tmax}.",
                         f"swap them: --tmin {args.tmax} --tmax {args.tmin}.")
    from ._choices import epoch_window

    epoch_tmin, epoch_tmax = epoch_window(args.epoch_tmin, args.epoch_tmax)
    if epoch_tmin >= epoch_tmax:
        raise InputError(f"The epoch window is empty: --epoch-tmin {epoch_tmin:g} is not "
                         f"before --epoch-tmax {epoch_tmax:g}.", "use tmin < tmax.")
    if epoch_tmax - epoch_tmin > MAX_EPOCH_S:
        hint = (f" Times are in seconds: did you mean --epoch-tmin {epoch_tmin / 1000:g} "
                f"--epoch-tmax {epoch_tmax / 1000:g}?" if max(abs(epoch_tmin),
                                                              abs(epoch_tmax)) >= 1 else "")
        raise InputError(f"The epoch window {epoch_tmin:g} to {epoch_tmax:g} s is "
                         f"{epoch_tmax - epoch_tmin:g} s long: longer than an evoked response "
                         f"(at most {MAX_EPOCH_S:g} s here), and every epoch would be held in "
                         f"memory.{hint}",
                         "give the epoch window in seconds around the events, e.g. "
                         "--epoch-tmin -0.2 --epoch-tmax 0.5.")
    if args.allow_prestimulus and (args.continuous or args.tmax is None or args.tmax > 0):
        raise InputError("--allow-prestimulus only applies to a time window that ends before "
                         "the stimulus (--tmax 0 or less), which this one does not.",
                         "drop --allow-prestimulus.")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}.", "use e.g. --seed 0.")
    _parse_reject(args.reject)
    if args.noise_cov is not None and args.empty_room is not None:
        raise InputError("--noise-cov and --empty-room both give the noise covariance: one of "
                         "them would be ignored.",
                         "keep one: --noise-cov FILE, or --empty-room FILE to estimate it "
                         "from an empty-room recording.")
    if not args.continuous:
        # Options that cut a raw recording into epochs, given with epochs or an average.
        from ._choices import check_recording_options, recording_kind

        check_recording_options(recording_kind(args.recording), repr(args.recording),
                                events=args.events, epoch_tmin=args.epoch_tmin,
                                epoch_tmax=args.epoch_tmax, reject=args.reject)
        # Options of continuous recordings would be silently ignored.
        given = [o for o, _ in _CONTINUOUS_ONLY if getattr(args, o) is not None]
        if given:
            raise InputError(f"{', '.join('--' + o.replace('_', '-') for o in given)} only "
                             f"appl{'ies' if len(given) == 1 else 'y'} with --continuous "
                             "(every window of a raw recording).",
                             "add --continuous, or drop "
                             f"{'it' if len(given) == 1 else 'them'} to localize an average.")
    if args.sure_curve and not isinstance(args.alpha, str):
        raise InputError(f"--sure-curve draws the automatic λ search's curve; with --alpha "
                         f"{args.alpha:g} there is no search.",
                         "drop --sure-curve, or let λ be chosen (--alpha auto or sure).")
    from ._choices import check_forward_spec  # light: no MNE in the launcher

    check_forward_spec(args, continuous=args.continuous)
    return _check_penalty(args)


def _run_localize(args, progress, argv):
    """``localize``: continuous recordings here; averages in stages (:mod:`._stages`).

    Returns ``(result, paths)`` for ``--continuous``, else ``(summary, paths)``.
    """
    if args.continuous:
        from .pipeline import ForwardSpec

        _check_localize_args(args)
        spec = ForwardSpec(forward=args.forward, subject=args.subject,
                           subjects_dir=args.subjects_dir, trans=args.trans, bem=args.bem,
                           src=args.src, spacing=args.spacing, montage=args.montage,
                           montage_match=args.montage_match)
        return _run_continuous(args, spec, progress)
    _check_localize_args(args)
    from ._stages import run_localize

    return run_localize(args, argv, progress)


_EPOCH_OPTIONS = ("condition", "events", "epoch_tmin", "epoch_tmax", "no_baseline",
                  "allow_prestimulus", "reject", "pick_ori", "gamma", "sure_curve")


#: Options of --continuous only, with their defaults there (None on the command line, so
#: that one given without --continuous is refused even at its default value).
_CONTINUOUS_ONLY = (("window", 0.1), ("step", 0.05), ("l_freq", None), ("h_freq", None),
                    ("n_jobs", 1), ("noise_segment", None))


def _run_continuous(args, spec, progress):
    for option, default in _CONTINUOUS_ONLY:
        if getattr(args, option) is None:
            setattr(args, option, default)
    given = [o for o in _EPOCH_OPTIONS  # (0.0 == False: compared by identity)
             if getattr(args, o, None) is not None and getattr(args, o) is not False]
    if given:
        raise InputError(
            f"--continuous localizes every window of the raw recording; "
            f"{', '.join('--' + o.replace('_', '-') for o in given)} only "
            f"appl{'ies' if len(given) == 1 else 'y'} to averages.",
            f"drop {'it' if len(given) == 1 else 'those options'}, or drop --continuous to "
            "localize an average.")
    for option in ("window", "step", "l_freq", "h_freq"):
        _finite(getattr(args, option), "--" + option.replace("_", "-"))
    # Checked here too so that the messages name the options, not the Python arguments.
    for option in ("window", "step"):
        if getattr(args, option) <= 0:
            raise InputError(f"--{option} must be a positive number of seconds, got "
                             f"{getattr(args, option):g}.",
                             "use e.g. --window 0.1 --step 0.05 (100 ms windows, 50 % overlap).")
    if args.step > args.window:
        raise InputError(f"--step {args.step:g} is longer than --window {args.window:g}: samples "
                         "between windows would get no estimate.",
                         "use a step no longer than the window, e.g. --step "
                         f"{args.window / 2:g}.")
    if args.n_jobs < 1 and args.n_jobs != -1:
        raise InputError(f"--n-jobs must be a positive number of processes or -1, got "
                         f"{args.n_jobs}.", "use --n-jobs 1 (serial), 2, ... or -1 (all cores).")
    segment = None
    if args.noise_segment is not None:
        try:
            segment = tuple(float(x) for x in args.noise_segment.split(","))
            if len(segment) != 2 or not all(math.isfinite(x) for x in segment):
                raise ValueError
        except ValueError:
            raise InputError(f"--noise-segment must be START,STOP in seconds, got "
                             f"{args.noise_segment!r}.", "e.g. --noise-segment 0,20.") from None
        if segment[0] >= segment[1]:
            raise InputError(f"--noise-segment {args.noise_segment}: STOP is not after START.",
                             f"give START,STOP in that order, e.g. --noise-segment "
                             f"{segment[1]:g},{segment[0]:g}.")
    alpha = "qut" if args.alpha == "auto" else args.alpha
    if isinstance(alpha, str) and alpha != "qut":
        raise InputError(f"--alpha {alpha} is not available with --continuous.",
                         "use --alpha auto (the amortized threshold) or a fraction such as 0.5.")
    from .continuous_file import localize_continuous_file

    return localize_continuous_file(
        args.recording, args.out, forward_spec=spec, noise_cov=args.noise_cov,
        empty_room=args.empty_room, window=args.window, step=args.step,
        l_freq=args.l_freq, h_freq=args.h_freq, tmin=args.tmin, tmax=args.tmax,
        alpha=alpha, penalty=args.penalty or "l21", loose=args.loose, depth=args.depth,
        rank=args.rank, tol=args.tol, bads=args.bads, ch_types=_channel_types(args),
        exclude=args.exclude, n_jobs=args.n_jobs, noise_segment=segment,
        figures=not args.no_figures, progress=progress, verbose=args.verbose,
        overwrite=args.overwrite, allow_missing_types=args.allow_missing_types)


def _print_continuous(result, paths, args, wall_s):
    """The one-line summary; ``wall_s``: the whole command's time (reading, localizing,
    placing the reported sources, figures, files) — what the user waited for."""
    if args.json:
        _print_summary_file(paths)
        return
    summary = result.summary()
    # How the reported sources were placed (a --bem dipole fit, sub-grid fit, centroid).
    methods = ", ".join(dict.fromkeys(s["position_method"]
                                      for s in summary["reported_sources"])) or "none"
    # "Above the threshold" windows are solved; BIC pruning may leave them without a source.
    print(f"{summary['n_windows']} windows: {summary['n_windows_solved']} above the threshold "
          f"({summary['n_windows_with_sources']} with a source after BIC pruning), "
          f"{summary['n_windows_empty']} below it, {summary['n_windows_bad']} "
          f"skipped (BAD_); {len(summary['sources'])} grid source(s) active at some time, "
          f"{len(summary['reported_sources'])} reported source(s) ({methods}); "
          f"{wall_s:.0f} s in all for {summary['duration_s']:.0f} s of data (localizing "
          f"{summary['timings_s']['total']:.0f} s)")
    print(f"outputs in {paths['summary'].parent}")


def _run_demo(args, progress):
    from ._output_dir import resolve_output_dir
    from .demo import run_demo

    resolve_output_dir(args.out)
    _check_penalty(args)
    if not (math.isfinite(args.snr) and args.snr > 0):
        raise InputError(f"--snr must be a positive number, got {args.snr}.",
                         "use e.g. --snr 10.")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}.", "use e.g. --seed 0.")
    return run_demo(args.out, penalty=args.penalty, alpha=args.alpha, snr=args.snr,
                    seed=args.seed, figures=not args.no_figures, progress=progress,
                    overwrite=args.overwrite)


def _print_summary_file(paths):
    """``--json``: print ``summary.json`` as written, byte for byte.

    One source of truth: the in-memory summary lacks what is added while the
    result is written (the no-source warning, channel notes, the files).
    """
    sys.stdout.write(Path(paths["summary"]).read_text(encoding="utf-8"))
    sys.stdout.flush()


#: Reported sources listed on the console (the others: summary.json, index.html).
_REPORTED_SHOWN = 10


def _placement(reported):
    """How the reported sources were placed, from their ``position_method``: by a fit
    (dipole fit with the BEM, or sub-grid fit) or at their grid sources' centroid (more
    than the fits can place, a fixed orientation, a volume)."""
    n_centroid = sum(rec.get("position_method") == "centroid" for rec in reported)
    if not n_centroid:
        return "each placed by a fit"
    if n_centroid == len(reported):
        return "each at its grid sources' centroid"
    return f"{len(reported) - n_centroid} placed by a fit, {n_centroid} at their centroid"


def _print_result(summary, paths, args):
    """What the result says, from its summary (``summary.json``'s content)."""
    if args.json:
        _print_summary_file(paths)
        return
    records = summary["sources"]
    print(f"{len(records)} active source(s); explained variance "
          f"{100 * summary['explained_variance']:.1f} %")
    from ._choices import FIELD_CANCELLATION_WARNING

    cancellation = summary.get("field_cancellation")
    if cancellation is not None and cancellation > FIELD_CANCELLATION_WARNING:
        print(f"warning: the sources' fields cancel on the sensors (field cancellation "
              f"{cancellation:.0f}, ≈ 1 when they add up): opposing neighbouring sources with "
              f"implausible amplitudes; try --penalty l05 or l21, or a larger --alpha",
              file=sys.stderr)
    reported = summary.get("reported_sources") or []
    if reported:
        print(f"{len(reported)} reported source(s) (neighbouring grid sources grouped, "
              f"{_placement(reported)}; docs/guide/outputs.md):")
    for rec in reported[:_REPORTED_SHOWN]:
        mni = rec["position_mni_mm"]
        where = f"MNI ({mni[0]:.0f}, {mni[1]:.0f}, {mni[2]:.0f}) mm" if mni else \
            "head ({:.0f}, {:.0f}, {:.0f}) mm".format(*rec["position_head_mm"])
        label = rec.get("label") or rec["hemisphere"]
        conf = rec.get("confidence")
        conf = "" if conf is None else f"  confidence {conf:.2f}"
        print(f"  {label:28s} {where}  peak {rec['peak_amplitude_nAm']:.1f} nA·m "
              f"at {1e3 * rec['peak_time_s']:.0f} ms{conf}")
    if len(reported) > _REPORTED_SHOWN:
        print(f"  ... and {len(reported) - _REPORTED_SHOWN} weaker ones: summary.json "
              "(reported_sources), index.html")
    for warning in summary.get("warnings") or []:
        if warning["code"] != "field_cancellation":  # printed above
            print(f"warning: {warning['message']} Fix: {warning['fix']}", file=sys.stderr)
    if records and not records[0]["position_mni_mm"]:
        print("  (head coordinates: MNI needs the subject's MRI, --subjects-dir)")
    print(f"outputs in {paths['summary'].parent}")


# Characters of our messages, spelt out for a terminal that can't show them.
_ASCII = str.maketrans({"·": ".", "≈": "~", "≥": ">=", "≤": "<=", "↔": "<->", "λ": "lambda",
                        "×": "x", "–": "-", "—": "-", "±": "+/-", "µ": "u", "→": "->",
                        "√": "sqrt", "…": "..."})


class _AsciiFallback:
    """A text stream that spells out characters its encoding can't show (never fails)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = self._stream.encoding or "ascii"
            text = text.translate(_ASCII).encode(encoding, "replace").decode(encoding)
            return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _safe_streams():
    """Wrap stdout/stderr when they can't encode our messages; returns the originals."""
    originals = sys.stdout, sys.stderr
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            "·≈λ↔×–".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            setattr(sys, name, _AsciiFallback(stream))
    return originals


def _install_signal_handlers():
    """SIGTERM and SIGHUP unwind like Ctrl-C (staging folders removed); returns the old ones."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        raise _Terminated(signum)

    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            sig = getattr(signal, name)
            old[sig] = signal.signal(sig, handler)
    return old


def _error(args_json, problem, fix=None, *, prefix="meeg-inverse: error: "):
    """One message on stderr; with --json also an {"error", "fix"} object on stdout."""
    print(f"{prefix}{problem}" + (f"\n  Fix: {fix}" if fix else ""), file=sys.stderr)
    if args_json:
        print(json.dumps({"error": problem, "fix": fix}))


def _quiet_broken_pipe():
    """The reader of stdout went away (`| head`): stop writing there, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run_cohort(args):
    """``meeg-inverse cohort``: exit status 1 when a task failed (the others are written)."""
    from .cohort import CohortOptions, run_cohort

    options = CohortOptions(
        forward=args.forward, spacing=args.spacing, montage=args.montage,
        montage_match=args.montage_match, epoch_tmin=args.epoch_tmin,
        epoch_tmax=args.epoch_tmax, loose=args.loose, depth=args.depth, alpha=args.alpha,
        penalty=args.penalty, tmin=args.tmin, tmax=args.tmax, random_state=args.seed,
        confidence=args.confidence, figures=not args.no_figures)
    result = run_cohort(args.bids_root, args.task, subjects=args.subjects,
                        sessions=args.sessions, conditions=args.conditions, options=options,
                        subjects_dir=args.subjects_dir, out=args.out, workers=args.workers,
                        scheduler=args.scheduler, force=args.force, progress=not args.quiet)
    if args.json:
        print(json.dumps({"counts": result.counts, "tasks": result.tasks,
                          "out": str(result.out_dir)}, indent=1, default=str))
    return EXIT_FAILURE if result.counts["failed"] else EXIT_OK


def main(argv=None):
    """Entry point of ``meeg-inverse``; returns the exit status."""
    streams = _safe_streams()
    old_handlers = _install_signal_handlers()
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        return _main(argv, wants_json)
    except KeyboardInterrupt as exc:  # also while importing MNE in the first second
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        note = getattr(exc, "note", None) or "no output was written."  # a cohort keeps some
        print(f"meeg-inverse: interrupted ({name}); {note}", file=sys.stderr)
        return 128 + int(signum)
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_OK
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            _quiet_broken_pipe()
        sys.stdout, sys.stderr = streams


def _main(argv, wants_json):
    parser = build_parser()
    if argv[:1] == ["benchmark"] and not {"-h", "--help"} & set(argv[1:2]):
        # argparse's REMAINDER drops options placed first (`benchmark --quick`).
        args = argparse.Namespace(command="benchmark", options=argv[1:], json=False,
                                  quiet=False, verbose=False)
    else:
        try:
            args = parser.parse_args(argv)
        except _UsageError as exc:
            message, usage = exc.args
            print(usage, end="", file=sys.stderr)
            _error(wants_json, message.split(": error: ", 1)[-1], "see `meeg-inverse --help`.",
                   prefix=message.split("error: ", 1)[0] + "error: ")
            return EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    json_out = getattr(args, "json", False)
    from ._stages import StageFailed
    from .progress import Progress

    progress = Progress(enabled=not args.quiet, warnings=True)
    try:
        staged = args.command == "localize" and not args.continuous
        if not staged:  # the stages of localize set it themselves; this process stays light
            import mne

            mne.set_log_level("INFO" if args.verbose else "ERROR")
        with warnings.catch_warnings():
            if not args.verbose and getattr(args, "continuous", False):
                # Computed in this process (no stages): its warnings (no high-pass, MNE's
                # "Too few samples" of a short noise segment) are shown as a stage's are.
                from ._stages import show_warnings_once

                show_warnings_once(progress)
            elif not args.verbose:
                warnings.simplefilter("ignore")
            started = time.perf_counter()
            if args.command == "localize":
                result, paths = _run_localize(args, progress, argv)
            elif args.command == "demo":
                result, paths = _run_demo(args, progress)
            else:
                return {"view": _run_view, "fetch": _run_fetch, "benchmark": _run_benchmark,
                        "cohort": _run_cohort}[args.command](args) or EXIT_OK
        from ._cache_env import NOTES

        for note in dict.fromkeys(NOTES):  # where caches went in a read-only install
            progress.info(f"note: {note}")
        progress.done()
        if getattr(args, "continuous", False):
            _print_continuous(result, paths, args, time.perf_counter() - started)
        else:
            _print_result(result if isinstance(result, dict) else result.summary(), paths,
                          args)
        return EXIT_OK
    except InputError as exc:
        progress.done()
        _error(json_out, exc.problem, exc.fix)
        return EXIT_BAD_INPUT
    except StageFailed as exc:  # a bug in a stage, or a stage killed
        progress.done()
        _error(json_out, exc.problem, exc.fix, prefix="meeg-inverse: ")
        return EXIT_FAILURE
    except (_DatasetFailure, _EnvironmentFailure) as exc:
        progress.done()
        _error(json_out, str(exc), prefix="meeg-inverse: ")
        return EXIT_FAILURE
    except (KeyboardInterrupt, BrokenPipeError):
        progress.done()
        raise
    except Exception as exc:  # a bug or an environment problem: say so plainly
        progress.done()
        if args.verbose:
            traceback.print_exc()
        _error(json_out, f"failed: {type(exc).__name__}: {exc}",
               "run again with --verbose for details; please report it if it persists.",
               prefix="meeg-inverse: ")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
