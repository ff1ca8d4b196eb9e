"""Reported sources of a continuous recording placed by a dipole fit with the user's BEM."""

import mne
import numpy as np
import pytest

from meeg_inverse import InputError
from meeg_inverse.dipole_positions import dipole_fit_positions, read_head_model


@pytest.fixture(scope="module")
def bem_meg(sample_paths):
    path = sample_paths.get("bem_meg")
    if path is None or not path.exists():
        pytest.skip("the sample subject's one-layer BEM (sample-1280-bem-sol.fif) is missing")
    return path


def _info(problem):
    return mne.pick_info(problem.info, [problem.info["ch_names"].index(c)
                                        for c in problem.ch_names])


@pytest.fixture(scope="module")
def offgrid(problem, sample_forward, sample_paths):
    """Cortical vertices of the left hemisphere between the grid vertices (8-12 mm from
    every one): MRI positions and whitened fields (normal orientation, 3-layer M/EEG BEM)."""
    src = sample_forward["src"]
    used = np.concatenate([s["rr"][s["vertno"]] for s in src])
    s = src[0]
    cand = np.flatnonzero(s["inuse"] == 0)
    d = np.array([np.linalg.norm(used - s["rr"][v], axis=1).min() for v in cand])
    cand = cand[(d > 0.008) & (d < 0.012)][::7][:12]
    head_mri = mne.transforms.invert_transform(sample_forward["mri_head_t"])
    to_mri = s["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD
    rr = mne.transforms.apply_trans(head_mri, s["rr"][cand]) if to_mri else s["rr"][cand]
    disc = mne.setup_volume_source_space(pos=dict(rr=rr, nn=s["nn"][cand]), verbose=False)
    truth = mne.make_forward_solution(_info(problem), sample_paths["trans"], disc,
                                      sample_paths["bem"], meg=True, eeg=True, verbose=False)
    truth = mne.convert_forward_solution(truth, surf_ori=True, force_fixed=True, verbose=False)
    order = [truth["info"]["ch_names"].index(c) for c in problem.ch_names]
    white = problem.whitener @ truth["sol"]["data"][order]  # (rank, n_candidates)
    return rr, white / np.sqrt(np.mean(white ** 2, axis=0))  # each field of RMS 1


def _events(spans, position):
    return [dict(start=a / 600, stop=b / 600, peak_nAm=1.0, position=position, samples=(a, b))
            for a, b in spans]


def test_dipole_fit_puts_an_off_grid_source_closer_than_the_sub_grid_scan(
        problem, offgrid, sample_forward, sample_cov, sample_paths, bem_meg):
    """A cortical source between the grid vertices, simulated with the 3-layer M/EEG BEM,
    bursting 4 times in noise: the sub-grid scan (interpolated fields) lands several mm
    off; the dipole fit with the one-layer BEM on the MEG channels (another model: its
    error included) lands closer."""
    from meeg_inverse.continuous_sources import event_components, refine_tracked

    rr, white = offgrid
    info = _info(problem)
    positions, hemis = problem.source_positions(np.arange(problem.n_sources))
    spans = [(100, 160), (300, 420), (600, 650), (800, 900)]
    rng = np.random.default_rng(0)
    head_model = read_head_model(bem_meg, sample_paths["trans"], sample_forward, info)
    assert head_model.channels == "meg"
    for j in range(len(rr)):
        field = white[:, j]  # RMS 1 (SNR 3 below)
        data = rng.standard_normal((field.size, 1000))
        for a, b in spans:
            data[:, a:b] += 3 * np.outer(field, np.hanning(b - a) * rng.choice([-1, 1]))
        nearest = int(np.argmin(np.linalg.norm(positions - rr[j], axis=1)))
        sources = [dict(position=positions[nearest], hemi=hemis[nearest], energy=1.0,
                        source_indices=[nearest], events=_events(spans, positions[nearest]))]
        components = event_components(lambda a, b: data[:, a:b])
        assert refine_tracked(problem, sources, None, components=components)
        subgrid = np.linalg.norm(sources[0]["position"] - rr[j])
        if subgrid > 0.004:
            break
    else:
        pytest.fail("no candidate with a sub-grid error above 4 mm")
    dipole_fit_positions(sources, components, problem.whitener, info, sample_cov, head_model,
                         merge_mm=15.0)
    got = sources[0]
    error = np.linalg.norm(got["position"] - rr[j])
    assert got["position_method"] == "dipole fit (BEM)"
    np.testing.assert_allclose(got["subgrid_position"], rr[j], atol=subgrid + 1e-9)
    print(f"candidate {j}: sub-grid {subgrid * 1e3:.1f} mm, dipole fit {error * 1e3:.1f} mm, "
          f"share {got['dipole_gof']:.1f} %")
    assert error < subgrid and error < 0.003, (error, subgrid)
    assert got["dipole_gof"] > 90


def test_events_of_two_sources_tracked_as_one_are_given_back(problem, offgrid, sample_cov,
                                                             sample_paths, sample_forward,
                                                             bem_meg):
    """Two sources > 30 mm apart, bursting at different times; tracking put two of the
    second one's bursts into the first one's reported source (development recording 13):
    after the fits each source has exactly its own bursts, and sits near it."""
    from meeg_inverse.continuous_sources import event_components

    rr, white = offgrid
    dist = np.linalg.norm(rr[:, None] - rr[None], axis=2)
    a, b = np.unravel_index(np.argmax(np.where(dist > 0.03, -dist, -np.inf)), dist.shape)
    spans_a = [(100, 160), (300, 400), (500, 580)]
    spans_b = [(700, 760), (900, 990), (1100, 1180)]
    rng = np.random.default_rng(1)
    data = rng.standard_normal((white.shape[0], 1300))
    for k, spans in ((a, spans_a), (b, spans_b)):
        for s0, s1 in spans:
            data[:, s0:s1] += 3 * np.outer(white[:, k], np.hanning(s1 - s0))
    sources = [dict(position=rr[a] + [0.004, 0, 0], hemi="lh", energy=2.0, source_indices=[0],
                    centroid=rr[a], events=_events(spans_a + spans_b[:2], rr[a])),
               dict(position=rr[b] + [0, 0.004, 0], hemi="lh", energy=1.0, source_indices=[1],
                    centroid=rr[b], events=_events(spans_b[2:], rr[b]))]
    info = _info(problem)
    head_model = read_head_model(bem_meg, sample_paths["trans"], sample_forward, info)
    dipole_fit_positions(sources, event_components(lambda s0, s1: data[:, s0:s1]),
                         problem.whitener, info, sample_cov, head_model, merge_mm=15.0)
    assert len(sources) == 2
    assert [e["samples"] for e in sources[0]["events"]] == spans_a
    assert [e["samples"] for e in sources[1]["events"]] == spans_b
    for s, k in zip(sources, (a, b)):
        assert np.linalg.norm(s["position"] - rr[k]) < 0.005


def test_bad_bem_and_trans_are_one_clear_error(sample_forward, sample_paths, sample_evoked,
                                               bem_meg, tmp_path):
    info = sample_evoked.info
    trans = sample_paths["trans"]
    cases = [
        (dict(bem=tmp_path / "nope-bem-sol.fif", trans=trans), "BEM solution .* does not exist"),
        (dict(bem=sample_paths["cov"], trans=trans), "BEM solution"),
        (dict(bem=bem_meg.with_name("sample-1280-bem.fif"), trans=trans),
         "holds 1 surface.* without a solution"),  # was MNE's "No BEM solution found"
        (dict(bem=tmp_path, trans=trans), "BEM solution .* is a folder"),
        (dict(bem=3, trans=trans), "bem must be a BEM solution file"),
        (dict(bem=bem_meg, trans=tmp_path / "nope-trans.fif"), "transform .* does not exist"),
        (dict(bem=bem_meg, trans=sample_paths["cov"]), "head<->MRI transform"),
        (dict(bem=bem_meg, trans=info["dev_head_t"]), "must be a head<->MRI transform"),
    ]
    for kw, message in cases:
        with pytest.raises(InputError, match=message) as err:
            read_head_model(kw["bem"], kw["trans"], sample_forward, info)
        assert err.value.fix
        assert "recording" not in err.value.fix  # a folder's fix named "the recording file"
    # A transform 5 mm off the forward's is refused; without trans the forward's is used.
    off = mne.read_trans(trans)
    off["trans"][:3, 3] += [0.005, 0, 0]
    with pytest.raises(InputError, match="differs from the one the forward") as err:
        read_head_model(bem_meg, off, sample_forward, info)
    assert "omit trans" in err.value.fix
    model = read_head_model(bem_meg, None, sample_forward, info)
    assert model.head_mri_t["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD
    with pytest.raises(InputError, match="needs the head<->MRI transform"):
        read_head_model(bem_meg, None, None, info)
    # EEG alone cannot be fitted with a one-layer BEM.
    eeg = mne.pick_info(info, mne.pick_types(info, meg=False, eeg=True))
    with pytest.raises(InputError, match="models MEG only"):
        read_head_model(bem_meg, trans, sample_forward, eeg)
    assert read_head_model(sample_paths["bem"], trans, sample_forward, eeg).channels == "eeg"


def test_localize_continuous_checks_the_head_model_before_the_work(tmp_path):
    from meeg_inverse.continuous import localize_continuous

    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((4, 200)), info, verbose=False)
    # forward=None: the check comes before the operator is even built.
    with pytest.raises(InputError, match="BEM solution .* does not exist"):
        localize_continuous(raw, None, None, bem=tmp_path / "nope-bem-sol.fif")
    with pytest.raises(InputError, match="trans was given without bem"):
        localize_continuous(raw, None, None, trans=tmp_path / "t-trans.fif")


def test_cli_bad_bem_exits_2_before_the_forward(tmp_path, capsys):
    from meeg_inverse.cli import main

    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((4, 200)) * 1e-6, info,
                          verbose=False)
    fname = tmp_path / "tiny_raw.fif"
    raw.save(fname, verbose=False)
    status = main(["localize", str(fname), "--continuous", "--out", str(tmp_path / "o"), "-q",
                   "--no-figures", "--noise-segment", "0,2", "--forward",
                   str(tmp_path / "nope-fwd.fif"), "--bem", str(tmp_path / "nope-bem-sol.fif")])
    assert status == 2
    err = capsys.readouterr().err
    assert "BEM solution" in err and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bem_that_does_not_hold_the_forward_sources_is_refused(sample_forward, sample_paths,
                                                               bem_meg):
    """The template's forward with the sample subject's BEM ran to the end (exit 0): 28 % of
    its sources lay outside that inner skull, one reported source had no lattice point
    inside it and was labelled 'dipole fit (BEM)' with a NaN share in summary.json."""
    moved = sample_forward.copy()
    moved["source_rr"] = sample_forward["source_rr"] + [0.0, 0.0, 0.05]  # another head
    with pytest.raises(InputError, match=r"does not hold the forward's sources: only \d+ %") \
            as err:
        read_head_model(bem_meg, sample_paths["trans"], moved)
    assert "the subject the forward was computed for" in err.value.fix
    read_head_model(bem_meg, sample_paths["trans"], sample_forward)  # its own: accepted


def test_source_without_a_lattice_point_in_the_skull_is_not_labelled_fitted(
        problem, sample_cov, sample_paths, sample_forward, bem_meg):
    from meeg_inverse.continuous_sources import event_components

    info = _info(problem)
    data = np.random.default_rng(2).standard_normal((problem.whitener.shape[0], 400))
    outside = np.array([0.0, 0.0, 0.2])  # 20 cm above the MRI origin: far outside the skull
    sources = [dict(position=outside, hemi="lh", energy=1.0, source_indices=[0],
                    centroid=outside, position_method="sub-grid fit",
                    events=_events([(100, 200)], outside))]
    head_model = read_head_model(bem_meg, sample_paths["trans"], sample_forward, info)
    dipole_fit_positions(sources, event_components(lambda a, b: data[:, a:b]),
                         problem.whitener, info, sample_cov, head_model, merge_mm=15.0)
    got = sources[0]
    assert got["position_method"].startswith("sub-grid fit (no dipole fit")
    assert got["dipole_gof"] is None  # was NaN (invalid JSON in summary.json)
    np.testing.assert_allclose(got["position"], outside)
