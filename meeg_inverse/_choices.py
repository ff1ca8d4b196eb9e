"""Names and thresholds the command line needs, without importing the solvers.

``meeg-inverse localize`` checks its options and prints its result in a light
launcher process (see :mod:`meeg_inverse._stages`): these constants are what
it needs, so that it imports neither numpy, MNE nor numba.
:data:`PENALTY_NAMES` equals the keys of :data:`meeg_inverse.penalties.PENALTIES`
(tested).
"""

#: The template head's FreeSurfer subject (MNE's fsaverage).
TEMPLATE_SUBJECT = "fsaverage"
#: Every penalty :func:`meeg_inverse.penalties.make_penalty` builds, by name.
PENALTY_NAMES = ("l21", "weighted_l21", "l1", "mcp", "scad", "l05", "l23", "log", "irmxne")
#: The penalty of the default rule when none is given: BIC along the L0.5 path
#: won the study (amendment 5); a number or 'sure' keeps MNE's L2,1.
DEFAULT_RULE_PENALTY = "l05"
#: Below this fraction of λ_max a solve is refused: the solution is then
#: practically the minimum-norm least-squares fit with hundreds of active
#: sources, and the solver's cost grows without bound (:mod:`meeg_inverse.solve`).
ALPHA_FRACTION_FLOOR = 1e-4
#: Exclusive lower bound of each penalty's shape parameter (``gamma`` of MCP and
#: SCAD, ``eps`` of log-sum); the penalties refuse values at or below it.
SHAPE_PARAMETER_BOUND = {"mcp": 0.0, "scad": 2.0, "log": 0.0}


def check_shape_parameter(penalty, value):
    """Raise ValueError when ``value`` is not a valid shape parameter of ``penalty``."""
    bound = SHAPE_PARAMETER_BOUND[penalty]
    name = "eps" if penalty == "log" else "gamma"
    if not value > bound or value == float("inf"):
        raise ValueError(f"{penalty} needs a finite {name} > {bound:g}, got {value!r}")


def resolve_penalty(penalty, alpha):
    """The penalty to use: ``penalty``, or the default of the λ rule when it is None."""
    if penalty is not None:
        return penalty
    return DEFAULT_RULE_PENALTY if alpha == "auto" else "l21"


#: The λ curve figure of a result folder: the criterion of the automatic rule
#: that chose λ, along λ (whichever rule it was).
LAMBDA_CURVE_FILE = "lambda_curve.png"
#: What the λ curve shows for each automatic rule (``AlphaSelection.method``):
#: (the criterion, as the figure's axis names it; the rule, as its title names it).
SELECTION_CRITERIA = {
    "bic": ("BIC of the refit", "the BIC of the least-squares refit"),
    "qut": ("residual / noise variance", "the quantile universal threshold"),
    "sure-hypergradient": ("SURE", "SURE (hypergradient search)"),
    "sure-grid": ("SURE", "SURE (grid)"),
    "heldout": ("held-out MSE", "the held-out prediction error"),
}


def selection_criterion(method):
    """(criterion, rule) of an automatic λ rule, by its ``AlphaSelection.method``."""
    return SELECTION_CRITERIA.get(method, ("criterion", str(method)))


#: Field-cancellation ratio above which a solution is flagged (see
#: :meth:`meeg_inverse.problem.InverseProblem.field_cancellation`). Simulated
#: sources on the sample head (docs/validation.md, λ by SURE): at most 1.1 on the cortical grid (90
#: trials each), 6.9 off it (30 trials each); on the 5 mm volume MCP and SCAD
#: reach 11-106 (with +28-38 % amplitude bias and time-course correlations of
#: 0.66-0.76: the estimates the warning is for) while L0.5, log-sum and L2,1 stay
#: ≤ 2.8; on the real averages SCAD reaches 10-26 and MCP 53 ('Right visual',
#: 1 µA·m peaks).
FIELD_CANCELLATION_WARNING = 10.0


def check_subject_forward(spec):
    """Refuse to build the forward model of ``spec.subject`` without its subjects folder
    (``subjects_dir``) and head↔MRI transform (``trans``).

    Raises
    ------
    InputError
        Naming the options to give.
    """
    from .errors import InputError

    if getattr(spec, "subjects_dir", None) is None or spec.trans is None:
        raise InputError(
            f"Building a forward model for subject {spec.subject!r} needs the subjects "
            "folder and the head↔MRI transform.",
            "give --subjects-dir and --trans (and optionally --bem, --src), or a "
            "forward file (--forward), or no --subject to use the template head.")


def check_forward_spec(spec, *, continuous=False):
    """Refuse head-model options that would have no effect (a silent change of what was asked).

    With a forward file the transform, BEM and source space are those it was
    computed with; with the template head (no forward, no subject) MNE's
    fsaverage ones. There, ``--bem`` (with ``--trans`` or the forward's own)
    only places the reported sources by dipole fits, ``--src`` is not used,
    and ``--spacing`` only builds a forward.

    Parameters
    ----------
    spec : meeg_inverse.pipeline.ForwardSpec | argparse.Namespace
        Anything with ``forward``, ``subject``, ``trans``, ``bem``, ``src`` and
        ``spacing`` attributes (the command line's arguments).
    continuous : bool
        A continuous recording (``--continuous``); ``bem`` places the reported
        sources by dipole fits either way.

    Raises
    ------
    InputError
        Naming the options that would be ignored and how to make them count.
    """
    from .errors import InputError

    if spec.subject is not None and spec.subject != TEMPLATE_SUBJECT and spec.forward is None:
        # The subject's forward is built from all of them; say what is missing
        # before the recording is read.
        check_subject_forward(spec)
        return
    dipole_fit = spec.bem is not None  # places the reported sources, with --trans
    unused = [name for name, value in (("trans", spec.trans), ("bem", spec.bem),
                                       ("src", spec.src), ("spacing", spec.spacing))
              if value is not None and not (dipole_fit and name in ("trans", "bem"))
              and not (name == "spacing" and spec.forward is None)]
    if not unused:
        return
    options = " and ".join(", ".join(f"--{o}" for o in unused).rsplit(", ", 1))
    what = ("the forward solution (--forward) is used as it is, with the transform, BEM and "
            "source space it was computed with" if spec.forward is not None else
            "no --forward or --subject: the forward model is built on the template head "
            "(fsaverage), with its own transform and BEM")
    if unused == ["trans"]:
        fix = ("add --bem SUBJECT-bem-sol.fif to place the reported sources by dipole fits "
               "with it (--trans is its transform), or drop --trans.")
    else:
        fix = (f"drop {options}; or build the subject's forward with --subject SUBJECT "
               "--subjects-dir DIR --trans FILE [--bem --src] instead of "
               + ("--forward" if spec.forward is not None else "the template") + ".")
    raise InputError(f"{options} would have no effect here: {what}.", fix)


#: MNE's file-name conventions of evoked and epochs files (anything else: a raw recording).
EVOKED_SUFFIXES = ("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz")
EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")
#: Epoch-cutting options, with their value for a raw recording when not given (None: the
#: command line's defaults are None so that a value given with another recording is seen).
EPOCH_WINDOW_DEFAULT = (-0.2, 0.5)


def epoch_window(epoch_tmin=None, epoch_tmax=None):
    """The epoch window (s) to cut from a raw recording: the given ends, the defaults
    (:data:`EPOCH_WINDOW_DEFAULT`) for those not given (None)."""
    return tuple(default if value is None else value
                 for value, default in zip((epoch_tmin, epoch_tmax), EPOCH_WINDOW_DEFAULT))


def recording_kind(fname):
    """Say whether a file holds evoked responses, epochs or a raw recording.

    Parameters
    ----------
    fname : path-like
        The file name; MNE's naming convention decides (``-ave.fif``,
        ``-epo.fif``, anything else is a raw recording).

    Returns
    -------
    kind : 'evoked' | 'epochs' | 'raw'
    """
    from pathlib import Path

    name = Path(fname).name.lower()
    if name.endswith(EVOKED_SUFFIXES):
        return "evoked"
    if name.endswith(EPOCHS_SUFFIXES):
        return "epochs"
    return "raw"


def check_recording_options(kind, name, *, events=None, epoch_tmin=None, epoch_tmax=None,
                            reject=None):
    """Refuse the options that cut epochs from a raw recording when ``kind`` holds none.

    ``--events``, ``--epoch-tmin`` and ``--epoch-tmax`` cut a raw recording into
    epochs; ``--reject`` drops epochs (of a raw recording or an epochs file). Given
    with a recording that is already cut (epochs) or averaged (evoked) they would be
    silently ignored.

    Raises
    ------
    InputError
        Naming the options, the kind of recording and the fix.
    """
    from .errors import InputError

    if kind == "raw":
        return
    given = [option for option, value in (("--events", events), ("--epoch-tmin", epoch_tmin),
                                          ("--epoch-tmax", epoch_tmax)) if value is not None]
    if kind == "evoked" and reject is not None:
        given.append("--reject")
    if not given:
        return
    options = " and ".join(", ".join(given).rsplit(", ", 1))
    if kind == "evoked":
        what = (f"{name} holds averages (an evoked file): its epochs were cut, rejected and "
                "averaged when it was made, so they would be ignored")
        fix = (f"drop {options} (choose the part to localize with --tmin/--tmax), or give the "
               "raw recording (or the epochs file) it was averaged from.")
    else:
        what = (f"{name} holds epochs already cut, so they would be ignored "
                "(--reject does apply to epochs)")
        fix = (f"drop {options} (choose the part to localize with --tmin/--tmax), or give the "
               "raw recording to cut epochs from.")
    verb = "applies" if len(given) == 1 else "apply"
    where = ("to the epochs cut from a raw recording" if kind == "evoked" else
             "to a raw recording (cutting it into epochs)")
    raise InputError(f"{options} only {verb} {where}, but {what}.", fix)
