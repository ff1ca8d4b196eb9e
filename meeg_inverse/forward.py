"""Forward models: read one, build one from a subject's anatomy, or use a template head.

The template is fsaverage: MNE's shipped head surface, fiducials and
head↔MRI transform (``mne/data/fsaverage``) and nilearn's fsaverage5 cortical
meshes, from which an ico-4 surface source space (2 × 2562 sources) is set up.
The head model of the template is a shell sphere model centred on fsaverage's
inner skull: MNE ships no three-layer BEM for fsaverage, and a fitted sphere is
the standard fallback for EEG and MEG without an individual MRI.
"""

import os
import shutil
from pathlib import Path

import mne
import numpy as np

from ._choices import TEMPLATE_SUBJECT  # defined there: the light launcher checks it
from .errors import InputError
from .io import _existing_dir, read_checked

_MNE_FSAVERAGE = Path(mne.__file__).parent / "data" / "fsaverage"


def default_cache_dir():
    """Folder for files meeg-inverse derives once and reuses (template anatomy)."""
    base = os.environ.get("MEEG_INVERSE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    base = Path(base) if base else Path.home() / ".cache"
    if not os.environ.get("MEEG_INVERSE_CACHE"):
        from ._cache_env import writable_cache_dir

        # A read-only home (containers, HPC): a temporary folder instead.
        base = writable_cache_dir(base / "meeg-inverse", "meeg-inverse-cache")
    return base


def read_forward(fname, *, verbose=False):
    """Read a forward solution (``-fwd.fif``), with a clear error."""
    return read_checked(mne.read_forward_solution, fname, "forward solution",
                        "give a -fwd.fif file written by mne.write_forward_solution.",
                        verbose=verbose)


def make_subject_forward(info, *, subject, subjects_dir, trans, bem=None, spacing="oct6",
                         src=None, mindist=5.0, n_jobs=None, verbose=False):
    """Build a forward solution from a subject's anatomy.

    Parameters
    ----------
    info : mne.Info
        Sensor information of the recording.
    subject : str
        FreeSurfer subject name.
    subjects_dir : path-like
        FreeSurfer subjects folder.
    trans : path-like | mne.transforms.Transform
        The head↔MRI transform.
    bem : path-like | None
        BEM solution (``-bem-sol.fif``). ``None`` takes the subject's
        ``bem/*-bem-sol.fif`` (three layers preferred when EEG is present).
    spacing : str
        Source spacing as in :func:`mne.setup_source_space` (``'oct6'``,
        ``'ico4'``, ...) or ``'vol5'`` for a 5 mm volume source space inside
        the inner skull.
    src : path-like | mne.SourceSpaces | None
        A source space to use instead of setting one up.
    mindist : float
        Exclude sources closer than this (mm) to the inner skull.

    Returns
    -------
    forward : mne.Forward
    """
    subjects_dir = _existing_dir(subjects_dir, "subjects folder")
    bem_dir = subjects_dir / subject / "bem"
    if not (subjects_dir / subject).is_dir():
        raise InputError(f"Subject {subject!r} not found in {str(subjects_dir)!r}.",
                         "check --subject and --subjects-dir.")
    if bem is None:
        has_eeg = len(mne.pick_types(info, meg=False, eeg=True)) > 0
        candidates = sorted(bem_dir.glob("*-bem-sol.fif"))
        three = [c for c in candidates if len(mne.read_bem_solution(c, verbose=False)["surfs"]) == 3]
        candidates = three if (has_eeg and three) else candidates
        if not candidates:
            raise InputError(f"No BEM solution (*-bem-sol.fif) in {str(bem_dir)!r}.",
                             "make one with mne.make_bem_solution or give --bem.")
        bem = candidates[0]
    if src is None:
        if str(spacing).startswith("vol"):
            pos = float(str(spacing)[3:] or 5.0)
            surface = bem_dir / "inner_skull.surf"
            src = mne.setup_volume_source_space(
                subject, pos=pos, surface=surface if surface.exists() else None,
                bem=None if surface.exists() else bem, subjects_dir=subjects_dir,
                verbose=verbose)
        else:
            src = mne.setup_source_space(subject, spacing=spacing, subjects_dir=subjects_dir,
                                         add_dist=False, verbose=verbose)
    elif not isinstance(src, mne.SourceSpaces):
        src = read_checked(mne.read_source_spaces, src, "source space",
                           "give a -src.fif file written by mne.write_source_spaces.",
                           verbose=verbose)
    return mne.make_forward_solution(info, trans, src, bem, meg=_has_meg(info),
                                     eeg=_has_eeg(info), mindist=mindist, n_jobs=n_jobs,
                                     verbose=verbose)


def _has_meg(info):
    return len(mne.pick_types(info, meg=True, eeg=False, exclude=[])) > 0


def _has_eeg(info):
    return len(mne.pick_types(info, meg=False, eeg=True, exclude=[])) > 0


def template_subjects_dir(cache_dir=None):
    """Return a FreeSurfer-style subjects folder holding the fsaverage template.

    It is written once into the cache folder from files that ship inside MNE
    and nilearn, so no network is needed.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "template"
    subject_dir = root / TEMPLATE_SUBJECT
    done_marker = subject_dir / ".complete"
    if done_marker.exists():
        return root
    from nibabel.freesurfer import write_geometry
    from nilearn.datasets import load_fsaverage

    tmp_root = root.with_name(root.name + f".tmp{os.getpid()}")
    tmp_subject = tmp_root / TEMPLATE_SUBJECT
    (tmp_subject / "surf").mkdir(parents=True, exist_ok=True)
    (tmp_subject / "bem").mkdir(parents=True, exist_ok=True)
    meshes = load_fsaverage("fsaverage5")
    for hemi, part in (("lh", "left"), ("rh", "right")):
        for kind, key in (("white", "white_matter"), ("pial", "pial"),
                          ("inflated", "inflated"), ("sphere", "sphere")):
            mesh = meshes[key].parts[part]
            write_geometry(str(tmp_subject / "surf" / f"{hemi}.{kind}"),
                           np.asarray(mesh.coordinates, float),
                           np.asarray(mesh.faces, np.int32))
    for name in ("fsaverage-head.fif", "fsaverage-fiducials.fif", "fsaverage-trans.fif",
                 "fsaverage-inner_skull-bem.fif"):
        shutil.copy(_MNE_FSAVERAGE / name, tmp_subject / "bem" / name)
    (tmp_subject / ".complete").write_text("fsaverage5 meshes (nilearn) + MNE fsaverage head\n")
    if subject_dir.exists():  # an interrupted earlier attempt
        shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp_root.rename(root)
    except OSError:  # another process won the race
        shutil.rmtree(tmp_root, ignore_errors=True)
    return root


def ensure_sensor_positions(info, montage=None, match_by="name", notes=None):
    """Make sure every EEG channel has a position, setting a montage if needed.

    Parameters
    ----------
    info : mne.Info
        Modified in place.
    montage : str | path-like | mne.channels.DigMontage | None
        A standard montage name (e.g. ``'standard_1005'``), a montage file, or
        a montage. ``None`` keeps the positions in the file and falls back to
        ``'standard_1005'`` when EEG channels have none.
    match_by : 'name' | 'order'
        Match montage channels to data channels by name, or by order when the
        recording names its channels generically (``'EEG 000'``...). By name,
        amplifier prefixes and reference suffixes are ignored (``'EEG Fz-Ref'``
        is ``Fz``; see :func:`meeg_inverse.channels.match_names`); the
        recording keeps its names.
    notes : list | None
        What was matched, and which channels were left out for lack of a
        position, is appended here (or warned, when None).

    Raises
    ------
    InputError
        When no EEG channel can be matched, or the montage can't be read.

    Notes
    -----
    EEG channels that have no position in the montage (e.g. EOG leads typed
    as EEG) are marked bad, with a note, instead of stopping.
    """
    import warnings

    from .channels import match_names

    def note(text):
        if notes is None:
            warnings.warn(text, stacklevel=3)
        else:
            notes.append(text)

    eeg = mne.pick_types(info, meg=False, eeg=True, exclude=[])
    if len(eeg) == 0 and montage is None:
        return info
    locs = np.array([info["chs"][k]["loc"][:3] for k in eeg]) if len(eeg) else np.zeros((0, 3))
    missing = ~np.isfinite(locs).all(axis=1) | (np.abs(locs).sum(axis=1) == 0)
    if montage is None and not missing.any():
        return info
    if montage is None:
        montage = "standard_1005"
    if isinstance(montage, (str, os.PathLike)) and Path(str(montage)).suffix:
        montage = read_checked(mne.channels.read_custom_montage, montage, "montage file",
                               "give a montage file MNE reads (.locs, .elc, .sfp, .bvef, ...).")
    elif isinstance(montage, str):
        try:
            montage = mne.channels.make_standard_montage(montage)
        except ValueError:
            raise InputError(f"Unknown montage {montage!r}.",
                             "use a name from mne.channels.get_builtin_montages() or a file.") from None
    eeg_names = [info["ch_names"][k] for k in eeg]
    if match_by == "order":
        if len(montage.ch_names) != len(eeg_names):
            raise InputError(
                f"The montage has {len(montage.ch_names)} channels, the recording "
                f"{len(eeg_names)} EEG channels; they cannot be matched by order.",
                "give a montage with one position per EEG channel, in recording order, or "
                "match by name (--montage-match name), which ignores prefixes and "
                "suffixes such as 'EEG ' and '-Ref'.")
        mne.rename_channels(info, dict(zip(eeg_names, montage.ch_names)))
        eeg_names = list(montage.ch_names)
    matched, renamed = match_names(eeg_names, montage.ch_names)
    unmatched = [name for name in eeg_names if name not in matched]
    if len(unmatched) == len(eeg_names):
        raise InputError(
            f"No EEG channel of the recording ({', '.join(eeg_names[:4])}, ...) is named in "
            "the montage, so the electrodes have no positions.",
            "give the montage file of this recording (--montage), and if its names differ "
            "from the recording's, match them by order (--montage-match order).")
    if renamed:
        pairs = ", ".join(f"{a!r} → {b!r}" for a, b in list(renamed.items())[:6])
        note(f"matched {len(renamed)} EEG channel name(s) to the montage after removing "
             f"prefixes/suffixes: {pairs}" + (", ..." if len(renamed) > 6 else ""))
    if unmatched:
        info["bads"] = list(dict.fromkeys(list(info["bads"]) + unmatched))
        note(f"{len(unmatched)} EEG channel(s) have no position in the montage and are left "
             f"out (marked bad): {', '.join(unmatched[:8])}"
             + (", ..." if len(unmatched) > 8 else "")
             + "; if they are not EEG (e.g. EOG leads), say so with --eog or --ch-types.")
    # The montage takes the recording's names, so the recording keeps them.
    montage = montage.copy()
    inverse = {b: a for a, b in matched.items()}
    montage.rename_channels({m: inverse.get(m, m) for m in montage.ch_names
                             if m in inverse and inverse[m] != m})
    info.set_montage(montage, match_case=False, on_missing="ignore")
    return info


def fit_template_trans(info, subjects_dir, *, verbose=False):
    """Fit the fsaverage head to the recording's digitization.

    Fiducials are aligned first, then iterative closest point on the scalp
    refines the fit when there are enough head points (EEG electrodes or a
    head shape). Without fiducials MNE's fsaverage transform is returned.
    """
    from mne.coreg import Coregistration

    dig = info.get("dig") or []
    kinds = {d["kind"] for d in dig}
    if mne.io.constants.FIFF.FIFFV_POINT_CARDINAL not in kinds:
        return mne.read_trans(_MNE_FSAVERAGE / "fsaverage-trans.fif")
    # The constructor takes no verbose: without this it prints "Using low resolution head
    # model ..." at MNE's global level (INFO in a cohort's Dask workers).
    with mne.utils.use_log_level(verbose if verbose else "WARNING"):
        coreg = Coregistration(info, TEMPLATE_SUBJECT, subjects_dir=subjects_dir,
                               fiducials="auto")
    coreg.fit_fiducials(verbose=verbose)
    n_points = sum(d["kind"] in (mne.io.constants.FIFF.FIFFV_POINT_EEG,
                                 mne.io.constants.FIFF.FIFFV_POINT_EXTRA) for d in dig)
    if n_points >= 10:
        coreg.fit_icp(n_iterations=20, nasion_weight=2.0, verbose=verbose)
    return coreg.trans


def _fit_sphere(points):
    """Least-squares sphere through points: returns centre and radius."""
    design = np.c_[2 * points, np.ones(len(points))]
    rhs = (points ** 2).sum(axis=1)
    sol = np.linalg.lstsq(design, rhs, rcond=None)[0]
    centre = sol[:3]
    radius = np.sqrt(sol[3] + centre @ centre)
    return centre, radius


def template_sphere_model(trans, subjects_dir, src):
    """A four-shell sphere head model (brain, CSF, skull, scalp) for the template.

    The centre is fitted to fsaverage's inner skull; the brain shell is made
    just large enough to hold every source (a sphere fitted to the scalp
    leaves occipital and temporal cortex outside and MNE would drop those
    sources), and the outer shells follow MNE's default relative radii.
    """
    bem_dir = Path(subjects_dir) / TEMPLATE_SUBJECT / "bem"
    inner = mne.read_bem_surfaces(bem_dir / "fsaverage-inner_skull-bem.fif", verbose=False)[0]
    mri_head_t = _mri_head_t(trans)
    centre, _ = _fit_sphere(mne.transforms.apply_trans(mri_head_t, inner["rr"]))
    sources = np.concatenate([mne.transforms.apply_trans(mri_head_t, s["rr"][s["vertno"]])
                              for s in src])
    brain_radius = np.linalg.norm(sources - centre, axis=1).max() + 0.002
    relative_radii = (0.90, 0.92, 0.97, 1.0)
    return mne.make_sphere_model(r0=centre, head_radius=brain_radius / relative_radii[0],
                                 relative_radii=relative_radii, verbose=False)


def make_template_forward(info, *, spacing="ico4", montage=None, montage_match="name",
                          cache_dir=None, n_jobs=None, verbose=False):
    """Build a forward solution on the fsaverage template for a subject without MRI.

    Parameters
    ----------
    info : mne.Info
        Sensor information; EEG positions are completed from ``montage`` when
        missing (modified in place).
    spacing : str
        Source spacing on the fsaverage5 cortex (``'ico4'``: 2 × 2562 sources,
        ``'ico3'``: 2 × 642, ``'all'``: 2 × 10242).
    montage, montage_match
        See :func:`ensure_sensor_positions`.
    cache_dir : path-like | None
        Where the template subjects folder is written once.

    Returns
    -------
    forward : mne.Forward
    trans : mne.transforms.Transform
        The fitted head↔MRI transform.
    subjects_dir : Path
        The template subjects folder (subject ``'fsaverage'``).
    """
    ensure_sensor_positions(info, montage, match_by=montage_match)
    subjects_dir = template_subjects_dir(cache_dir)
    trans = fit_template_trans(info, subjects_dir, verbose=verbose)
    src = mne.setup_source_space(TEMPLATE_SUBJECT, spacing=spacing, subjects_dir=subjects_dir,
                                 add_dist=False, verbose=verbose)
    sphere = template_sphere_model(trans, subjects_dir, src)
    # MNE checks that sources lie inside a sphere model with the sources in MRI
    # coordinates but the sphere centre in head coordinates, which drops
    # hundreds of cortical sources when the two frames differ. Computing with
    # the sources already moved to head coordinates (and an identity
    # transform) makes the check and the fields consistent.
    mri_head_t = _mri_head_t(trans)
    src_head = src.copy()
    for s in src_head:
        s["rr"] = mne.transforms.apply_trans(mri_head_t, s["rr"])
        s["nn"] = mne.transforms.apply_trans(mri_head_t, s["nn"], move=False)
    identity = mne.transforms.Transform("head", "mri")
    fwd = mne.make_forward_solution(info, identity, src_head, sphere, meg=_has_meg(info),
                                    eeg=_has_eeg(info), mindist=0.0, n_jobs=n_jobs,
                                    verbose=verbose)
    fwd["mri_head_t"] = mri_head_t
    # mne.write_forward_solution writes info's transform: without it a written template
    # forward read back had an identity one, its sources moved by the fit (up to ~2 cm).
    with fwd["info"]._unlock():
        fwd["info"]["mri_head_t"] = mri_head_t
    return fwd, trans, subjects_dir


def _mri_head_t(trans):
    """The MRI → head transform, whichever direction ``trans`` is given in."""
    if trans["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD:
        return mne.transforms.invert_transform(trans)
    return trans


def check_forward_matches(forward, info, *, subject=None, tol_mm=5.0):
    """Check that a forward solution was computed for this recording.

    Raises :class:`InputError` when the forward belongs to another subject or
    session: different subject name, different head position of the MEG
    helmet, or EEG electrodes elsewhere on the head.
    """
    fwd_subject = forward["src"][0].get("subject_his_id")
    if subject is not None and fwd_subject is not None and fwd_subject != subject:
        # --subject with --forward names the subject of the labels and MNI coordinates:
        # the forward's own, or a mistake.
        raise InputError(
            f"The forward solution was computed for subject {fwd_subject!r}, not {subject!r} "
            "(--subject): the sources would be named on another subject's anatomy.",
            f"drop --subject (the forward's subject {fwd_subject!r} is used), or give the "
            f"forward solution of {subject!r}, or build it without --forward: --subject "
            f"{subject} --subjects-dir DIR --trans FILE-trans.fif.")
    fwd_info = forward["info"]
    if _has_meg(info) and fwd_info.get("dev_head_t") is not None and info.get("dev_head_t") is not None:
        shift = np.linalg.norm(fwd_info["dev_head_t"]["trans"][:3, 3] - info["dev_head_t"]["trans"][:3, 3])
        if shift * 1e3 > tol_mm:
            raise InputError(
                f"The forward solution was computed with the MEG helmet {shift * 1e3:.0f} mm away "
                "from where it is in this recording: it belongs to another subject or session.",
                "compute the forward solution with this recording's info "
                "(mne.make_forward_solution(raw.info, ...)).")
    fwd_pos = {ch["ch_name"]: ch["loc"][:3] for ch in fwd_info["chs"]
               if ch["kind"] == mne.io.constants.FIFF.FIFFV_EEG_CH}
    dists = [np.linalg.norm(fwd_pos[ch["ch_name"]] - ch["loc"][:3]) for ch in info["chs"]
             if ch["ch_name"] in fwd_pos and np.isfinite(ch["loc"][:3]).all()
             and np.abs(ch["loc"][:3]).sum() > 0 and np.abs(fwd_pos[ch["ch_name"]]).sum() > 0]
    if dists and np.median(dists) * 1e3 > tol_mm:
        raise InputError(
            f"The EEG electrodes of the forward solution lie {np.median(dists) * 1e3:.0f} mm "
            "(median) from those of the recording: it belongs to another subject or montage.",
            "compute the forward solution with this recording's info.")
