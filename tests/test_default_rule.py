"""Issue 14: the default answer on the real data — few sources in the right places.

The criteria are the issue's must-show (written before the selection study ran):
with no options, on each shared sample average (50–150 ms, the 508-source forward
from the shared BEM), at most 10 sources; each visual condition's strongest
source occipital (MNI y < −60 mm); each auditory condition's strongest source of
each hemisphere within 20 mm of that hemisphere's auditory cortex — met for
'Right Auditory', NOT for the 3-trial 'Left Auditory' (a strict xfail keeps the
record honest: it fails loudly the day it passes).
"""

import mne
import numpy as np
import pytest

from meeg_inverse import sparse_inverse
from meeg_inverse.summary import mni_transform

AUDITORY_MNI = {"lh": np.array([-50.0, -24.0, 8.0]), "rh": np.array([52.0, -22.0, 8.0])}


@pytest.fixture(scope="module")
def averages(sample_paths):
    out = {}
    for cond in ("Left Auditory", "Right Auditory", "Left visual", "Right visual"):
        ev = mne.read_evokeds(sample_paths["evoked"], condition=cond, baseline=(None, 0),
                              verbose=False)
        out[cond] = ev.crop(0.05, 0.15)
    return out


def _strongest(stc, fwd, subjects_dir):
    """MNI position (mm) of the strongest source (peak amplitude) overall and per hemisphere."""
    to_mni = mni_transform("sample", subjects_dir)
    amp = np.abs(stc.data).max(axis=1)
    rr = np.concatenate([s["rr"][v] for s, v in zip(fwd["src"], stc.vertices)])
    if fwd["src"][0]["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD:
        rr = mne.transforms.apply_trans(mne.transforms.invert_transform(fwd["mri_head_t"]), rr)
    hemi = np.concatenate([[h] * len(v) for h, v in zip(("lh", "rh"), stc.vertices)])
    mni = mne.transforms.apply_trans(to_mni, rr) * 1e3
    per = {}
    for h in ("lh", "rh"):
        idx = np.flatnonzero(hemi == h)
        if idx.size:
            per[h] = mni[idx[np.argmax(amp[idx])]]
    return mni[np.argmax(amp)], per


@pytest.fixture(scope="module")
def default_estimates(averages, sample_forward, sample_cov):
    return {cond: sparse_inverse(ev, sample_forward, sample_cov) for cond, ev in averages.items()}


@pytest.mark.parametrize("cond", ["Left Auditory", "Right Auditory", "Left visual",
                                  "Right visual"])
def test_default_keeps_few_sources(default_estimates, cond):
    n = sum(len(v) for v in default_estimates[cond].vertices)
    assert 1 <= n <= 10


@pytest.mark.parametrize("cond", ["Left visual", "Right visual"])
def test_default_visual_strongest_source_is_occipital(default_estimates, sample_forward,
                                                      sample_paths, cond):
    overall, _ = _strongest(default_estimates[cond], sample_forward,
                            sample_paths["subjects_dir"])
    assert overall[1] < -60


@pytest.mark.parametrize("cond", [
    "Right Auditory",
    pytest.param("Left Auditory", marks=pytest.mark.xfail(
        strict=True, reason="3-trial average: the strongest right source is deep (28, -50, 0); "
                            "docs/studies/selection_rule_results.md")),
])
def test_default_auditory_strongest_source_per_hemisphere(default_estimates, sample_forward,
                                                          sample_paths, cond):
    _, per = _strongest(default_estimates[cond], sample_forward, sample_paths["subjects_dir"])
    for h in ("lh", "rh"):
        assert h in per and np.linalg.norm(per[h] - AUDITORY_MNI[h]) <= 20


def test_confidence_on_real_head_simulation(sample_forward, sample_cov, sample_fixed_forward):
    """A true source (real forward, real noise covariance) gets ≥ 0.9; noise alone none ≥ 0.9."""
    fwd, info = sample_fixed_forward
    rng = np.random.default_rng(0)
    times = np.arange(-0.1, 0.15, 1 / info["sfreq"])
    tc = np.exp(-0.5 * ((times - 0.08) / 0.02) ** 2)  # peak at 80 ms
    k = 120  # a left-hemisphere vertex of the inverse grid
    signal = fwd["sol"]["data"][:, [k]] @ tc[None]
    whitener, _, colorer = mne.cov.compute_whitener(sample_cov, info, return_colorer=True,
                                                    pca=False, verbose=False)
    noise = colorer @ rng.standard_normal((colorer.shape[1], len(times)))
    nave = 4
    # Peak whitened SNR 4 against the noise of the average (1 / sqrt(nave) per channel).
    peak = np.sqrt(np.mean((whitener @ signal[:, [int(np.argmax(tc))]]) ** 2))
    signal *= 4.0 / (peak * np.sqrt(nave))
    ev = mne.EvokedArray(signal + noise / np.sqrt(nave), info, tmin=times[0], nave=nave,
                         verbose=False)
    ev.set_eeg_reference("average", projection=True, verbose=False)
    res = sparse_inverse(ev, sample_forward, sample_cov, return_result=True)
    pos_true = fwd["src"][0]["rr"][fwd["src"][0]["vertno"][k]]
    src_rr = np.concatenate([s["rr"][s["vertno"]] for s in fwd["src"]])
    near = [i for i in res.confidence if np.linalg.norm(src_rr[i] - pos_true) <= 0.01]
    assert near and max(res.confidence[i] for i in near) >= 0.9

    quiet = mne.EvokedArray(noise / np.sqrt(nave), info, tmin=times[0], nave=nave,
                            verbose=False)
    quiet.set_eeg_reference("average", projection=True, verbose=False)
    res = sparse_inverse(quiet, sample_forward, sample_cov, return_result=True)
    assert all(c < 0.9 for c in (res.confidence or {}).values())
