"""Example figures from the real MNE 'sample' data (used for docs/figures/).

    python -m meeg_inverse.viz._examples [OUT_DIR] [SHARED_DATA_DIR] [--no-viewer]

Two auditory sources (left and right transverse temporal region, found through MNI
coordinates) and a weaker late left parietal source are simulated with fixed (cortical
normal) orientations, projected through the real free-orientation MEG+EEG forward, noise
with the real noise covariance is added (nave = 60), and the data are whitened. The
"estimate" is an oracle least-squares fit on the true support: it stands in for a sparse
solver's output so that the figures can be built without the solver.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def simulate(shared, seed=0, nave=60):
    import mne

    sample = Path(shared) / "sample"
    meg, subjects_dir = sample / "MEG", sample / "subjects"
    evoked = mne.read_evokeds(meg / "test-ave.fif.gz", condition="Left Auditory", verbose=False)
    cov = mne.read_cov(meg / "test-cov.fif", verbose=False)
    trans = meg / "sample_audvis_trunc-trans.fif"
    cached = Path(__file__).resolve().parents[2] / ".cache" / "tests" / "sample-small-meeg-fwd.fif"
    if cached.exists():
        fwd = mne.read_forward_solution(cached, verbose=False)
    else:
        src = mne.read_source_spaces(meg / "sample-small-src.fif.gz", verbose=False)
        fwd = mne.make_forward_solution(
            evoked.info, trans, src, subjects_dir / "sample" / "bem" /
            "sample-320-320-320-bem-sol.fif", meg=True, eeg=True, mindist=0.0, verbose=False)
    src = fwd["src"]
    mri_head_t = mne.read_trans(trans)
    targets = [(0, (-52, -22, 8), 40e-9, 0.085, 0.014),  # left auditory
               (1, (54, -18, 8), 32e-9, 0.095, 0.016),  # right auditory
               (0, (-40, -60, 45), 15e-9, 0.170, 0.025)]  # late left parietal
    times = evoked.times
    verts, rows = [[], []], []
    for hemi, mni, amp, lat, width in targets:
        vno = src[hemi]["vertno"]
        pos_mni = mne.head_to_mni(src[hemi]["rr"][vno], "sample", mri_head_t,
                                  subjects_dir=subjects_dir, verbose=False)
        k = int(np.argmin(np.linalg.norm(pos_mni - np.asarray(mni), axis=1)))
        verts[hemi].append(int(vno[k]))
        rows.append((hemi, int(vno[k]), amp * np.exp(-0.5 * ((times - lat) / width) ** 2)))
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][1]))
    rows = [rows[i] for i in order]
    vertices = [np.array(sorted(v), int) for v in verts]
    # gain of each source along its cortical normal
    ch = fwd["sol"]["row_names"]
    info = mne.pick_info(evoked.info, mne.pick_channels(evoked.ch_names, ch, ordered=True))
    W, w_ch = mne.cov.compute_whitener(cov, info, verbose=False)
    sel = [ch.index(c) for c in w_ch]
    G = fwd["sol"]["data"][sel]
    offs = [0, len(src[0]["vertno"])]
    cols = []
    for hemi, v, _ in rows:
        k = offs[hemi] + int(np.searchsorted(src[hemi]["vertno"], v))
        nn = src[hemi]["nn"][v]
        cols.append(G[:, 3 * k:3 * k + 3] @ nn)
    Gs = np.array(cols).T
    X = np.array([r[2] for r in rows])
    rng = np.random.default_rng(seed)
    cov_data = mne.pick_channels_cov(cov, w_ch, ordered=True, verbose=False)["data"]
    e, V = np.linalg.eigh(cov_data)
    noise = (V * np.sqrt(np.clip(e, 0, None))) @ rng.standard_normal(
        (len(w_ch), len(times))) / np.sqrt(nave)
    M = Gs @ X + noise
    Mw = W @ M / 1.0
    WG = W @ Gs * np.sqrt(nave)  # whitened for the averaged noise level
    Mw = Mw * np.sqrt(nave)
    Xhat = np.linalg.lstsq(WG, Mw, rcond=None)[0]
    fit = WG @ Xhat
    stc = mne.SourceEstimate(Xhat, vertices, times[0], times[1] - times[0], subject="sample")
    return dict(stc=stc, src=src, data=Mw, fit=fit, times=times, trans=trans,
                subjects_dir=subjects_dir, truth=X)


def main(out_dir="docs/figures", shared=None, viewer=True):
    import mne

    from . import plot_fit_residual, plot_source_map, plot_time_courses, write_viewer_html

    root = Path(__file__).resolve().parents[2]
    shared = Path(shared) if shared else root.parent / "shared" / "data"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate(shared)
    stc, src, sd, trans = sim["stc"], sim["src"], sim["subjects_dir"], sim["trans"]
    kw = dict(subject="sample", subjects_dir=sd, trans=trans)
    plot_source_map(stc, src, out / "source_map_surface.png", time=0.085,
                    title="Simulated auditory sources (sample)", **kw)
    plot_source_map(stc, src, out / "source_map_fsaverage.png", time=0.085, surface="fsaverage",
                    title="Same sources on the fsaverage5 template", **kw)
    plot_time_courses(stc, out / "time_courses.png", time=0.085)
    plot_fit_residual(sim["times"], sim["data"], sim["fit"], out / "fit_residual.png",
                      title="Sample MEG+EEG (simulated)")
    if viewer:
        write_viewer_html(stc, src, out / "viewer_example.html",
                          title="Simulated auditory sources", **kw)
    # volume source space: two sources in the transparent inner skull and on the T1
    vsrc = mne.setup_volume_source_space("sample", pos=10.0, subjects_dir=sd,
                                         surface=sd / "sample" / "bem" / "inner_skull.surf",
                                         add_interpolator=False, verbose=False)
    vno = vsrc[0]["vertno"]
    rr = vsrc[0]["rr"][vno]
    pick = sorted({int(np.argmin(np.linalg.norm(rr - p, axis=1)))
                   for p in ([-0.05, 0.0, 0.0], [0.05, 0.0, 0.0])})
    t = stc.times
    data = np.array([35e-9 * np.exp(-0.5 * ((t - 0.085) / 0.014) ** 2),
                     25e-9 * np.exp(-0.5 * ((t - 0.095) / 0.016) ** 2)])[:len(pick)]
    vstc = mne.VolSourceEstimate(data, [vno[pick]], t[0], t[1] - t[0], subject="sample")
    plot_source_map(vstc, vsrc, out / "source_map_volume.png", subjects_dir=sd, time=0.085,
                    title="Volume source space: sources in the inner skull and on the T1")
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(*args[:2], viewer="--no-viewer" not in sys.argv)
