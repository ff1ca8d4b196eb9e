"""The built-in example: two simulated sources on the template head.

It needs no file of the user's and no network: the fsaverage template ships
inside MNE and nilearn, the 64-electrode BioSemi cap inside MNE. Two dipoles, in the
left motor cortex and the right occipital cortex, are simulated with evoked-like time
courses, projected through the template forward model, and noise with a
known covariance is added; then the data go through the same
``meeg-inverse localize`` pipeline as a user's file, and the localization
error against the truth is reported.
"""

import json
from pathlib import Path

import mne
import numpy as np

from .forward import make_template_forward
from .pipeline import ForwardSpec, Progress, check_output_dir, localize_file
from .summary import write_json

# Left hand motor cortex and right occipital (visual) cortex, MNI mm. Distinct
# EEG topographies: two symmetric auditory dipoles, for example, look nearly
# alike to 64 electrodes and are a harder problem than a demo should pose.
SOURCES_MNI_MM = {"lh": (-38.0, -24.0, 56.0), "rh": (20.0, -90.0, 10.0)}


def _time_course(times, latency, width, frequency):
    """An evoked-like damped oscillation peaking near ``latency``."""
    envelope = np.exp(-0.5 * ((times - latency) / width) ** 2)
    return envelope * np.cos(2 * np.pi * frequency * (times - latency))


def simulate_evoked(*, snr=10.0, seed=0, sfreq=250.0, progress=None):
    """Simulate EEG of two cortical sources on the fsaverage template.

    Returns
    -------
    evoked : mne.Evoked
    noise_cov : mne.Covariance
    forward : mne.Forward
    true_mni_mm : dict
        Hemisphere → MNI position (mm) of the simulated source.
    """
    rng = np.random.default_rng(seed)
    montage = mne.channels.make_standard_montage("biosemi64")
    info = mne.create_info(montage.ch_names, sfreq, "eeg")
    info.set_montage(montage)
    fwd, _, _ = make_template_forward(info, spacing="ico4")
    fwd = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True, verbose=False)
    vertices, true_mni, amplitudes = [], {}, []
    times = np.arange(-0.1, 0.4, 1.0 / sfreq)
    head_mri_t = mne.transforms.invert_transform(fwd["mri_head_t"])
    for hemi_index, (hemi, target) in enumerate(SOURCES_MNI_MM.items()):
        src = fwd["src"][hemi_index]
        # fsaverage's MRI coordinates are MNI305 coordinates.
        rr = mne.transforms.apply_trans(head_mri_t, src["rr"][src["vertno"]]) * 1e3
        nearest = int(np.argmin(np.linalg.norm(rr - np.array(target), axis=1)))
        vertices.append(np.array([src["vertno"][nearest]]))
        true_mni[hemi] = rr[nearest].tolist()
        latency = 0.1 + 0.01 * hemi_index
        amplitudes.append(40e-9 * _time_course(times, latency, 0.025, 4.0 + hemi_index))
    stc = mne.SourceEstimate(np.array(amplitudes), vertices, times[0], 1.0 / sfreq,
                             subject="fsaverage")
    clean = mne.apply_forward(fwd, stc, info, verbose=False)
    clean.set_eeg_reference("average", projection=True, verbose=False)
    clean.apply_proj(verbose=False)
    # Noise: white across electrodes, scaled so that the peak global field power
    # is `snr` times the noise standard deviation.
    signal_std = clean.data.std(axis=0).max()
    noise_std = signal_std / snr
    noise_cov = mne.Covariance(np.full(len(info.ch_names), noise_std ** 2), info.ch_names,
                               bads=[], projs=[], nfree=1000)
    evoked = clean.copy()
    evoked.data = clean.data + noise_std * rng.standard_normal(clean.data.shape)
    evoked.comment = "simulated"
    evoked.nave = 1
    # Baseline-corrected like an average of epochs (removes the noise's pre-stimulus mean).
    evoked.apply_baseline((None, 0), verbose=False)
    return evoked, noise_cov, fwd, true_mni


def run_demo(out_dir, *, penalty=None, alpha="auto", snr=10.0, seed=0, figures=True, progress=None,
             overwrite=False):
    """Simulate, localize through the file pipeline, and report the error.

    The simulated inputs are written to a temporary folder and copied into the
    result (``demo_inputs/``), so the result folder is written as a whole.

    Returns
    -------
    result : meeg_inverse.pipeline.Localization
    paths : dict
    """
    import tempfile

    progress = progress or Progress()
    out_dir = check_output_dir(out_dir, overwrite=overwrite)
    progress.step("simulating two cortical sources on the fsaverage template (EEG, 64 channels)")
    evoked, noise_cov, _, true_mni = simulate_evoked(snr=snr, seed=seed)
    with tempfile.TemporaryDirectory(prefix="meeg-inverse-demo-") as tmp:
        inputs = Path(tmp) / "demo_inputs"
        inputs.mkdir()
        evoked_file = inputs / "simulated-ave.fif"
        cov_file = inputs / "simulated-cov.fif"
        evoked.save(evoked_file, overwrite=True, verbose=False)
        noise_cov.save(cov_file, overwrite=True, verbose=False)
        progress.done()
        result, paths = localize_file(
            evoked_file, out_dir, forward_spec=ForwardSpec(), noise_cov=cov_file, tmin=0.0,
            tmax=0.3, alpha=alpha, penalty=penalty, figures=figures, progress=progress,
            overwrite=overwrite, extra_files={"demo_inputs": inputs})
    # The error of what the user is shown: the reported sources' positions (fitted
    # between the grid's vertices), not the grid sources, one of which is the
    # simulated one (the demo simulates on the grid).
    errors = {}
    reported = [r["position_mni_mm"] for r in result.extra.get("reported_sources") or []
                if r.get("position_mni_mm") is not None]
    estimated = np.array(reported) if reported else None
    for hemi, pos in true_mni.items():
        errors[hemi] = (None if estimated is None else
                        float(np.min(np.linalg.norm(estimated - np.array(pos), axis=1))))
    result.extra["demo"] = {"true_sources_mni_mm": true_mni,
                            "localization_error_mm": errors, "error_of": "reported sources",
                            "snr": snr, "seed": seed}
    # The summary was written before the errors were known: add them.
    summary = json.loads(paths["summary"].read_text())
    summary["demo"] = result.extra["demo"]
    write_json(summary, paths["summary"])
    progress.info("localization error: " + ", ".join(
        f"{hemi} {err:.1f} mm" if err is not None else f"{hemi} not found"
        for hemi, err in errors.items()))
    return result, paths
