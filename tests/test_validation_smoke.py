"""Smoke test of the validation study's scoring (scripts/validate_simulation.py).

Pure numpy on tiny hand-made configurations whose scores are known; no data, < 1 s.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_simulation.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("validate_simulation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _truth():
    rng = np.random.default_rng(0)
    pos = np.array([[0.03, 0.0, 0.05], [-0.04, 0.01, 0.06]])  # m, 71 mm apart
    t = np.linspace(0, 0.2, 20)
    tc = np.array([np.sin(2 * np.pi * 8 * t), np.exp(-((t - 0.1) / 0.03) ** 2)])
    tc += 0.01 * rng.standard_normal(tc.shape)
    amp = np.abs(tc).max(axis=1)
    return pos, amp, tc


def test_perfect_estimate_scores(vs):
    pos, amp, tc = _truth()
    s = vs.score_trial(pos, pos, amp, amp, tc, tc)
    assert s["err_true_mm"] == 0 and s["err_est_mm"] == 0
    assert s["recall"] == 1 and s["precision"] == 1 and s["all_found"]
    assert s["amp_bias"] == pytest.approx(0.0)
    assert s["corr"] == pytest.approx(1.0)
    # order of the estimates and sign of the time courses do not matter
    s = vs.score_trial(pos, pos[::-1], amp, amp[::-1], tc, -tc[::-1])
    assert s["err_true_mm"] == 0 and s["all_found"] and s["corr"] == pytest.approx(1.0)


def test_spurious_missed_and_shifted_sources(vs):
    pos, amp, tc = _truth()
    # first source found 5 mm off (within 10 mm), second missed; one spurious 50 mm away
    est = np.array([pos[0] + [0.005, 0, 0], pos[0] + [0, 0.05, 0]])
    s = vs.score_trial(pos, est, amp, np.array([amp[0] * 0.5, 1.0]), tc, tc[[0, 0]])
    d_second = np.linalg.norm(pos[1] - est, axis=1).min() * 1e3
    assert s["err_true_mm"] == pytest.approx((5.0 + d_second) / 2)
    assert s["err_est_mm"] == pytest.approx((5.0 + 50.0) / 2)  # nearest true for each estimate
    assert s["recall"] == 0.5 and s["precision"] == 0.5 and not s["all_found"]
    assert s["amp_bias"] == pytest.approx(-0.5)  # half the true peak
    assert s["corr"] == pytest.approx(1.0)
    assert s["n_est"] == 2 and s["n_true"] == 2
    # 20 mm off: not found
    s = vs.score_trial(pos[:1], pos[:1] + [0, 0, 0.02])
    assert s["err_true_mm"] == pytest.approx(20.0) and s["recall"] == 0 and s["precision"] == 0
    assert np.isnan(s["amp_bias"]) and np.isnan(s["corr"])


def test_empty_estimate(vs):
    pos, amp, tc = _truth()
    s = vs.score_trial(pos, np.empty((0, 3)), amp, np.empty(0), tc, np.empty((0, 20)))
    assert np.isinf(s["err_true_mm"]) and np.isinf(s["err_est_mm"])
    assert s["recall"] == 0 and np.isnan(s["precision"]) and not s["all_found"]


def test_local_peaks_and_summary(vs):
    # sources on a line 10 mm apart, two bumps: peaks at 2 (higher) and 7
    pos = np.c_[np.arange(10) * 0.01, np.zeros(10), np.zeros(10)]
    score = np.array([0, 1, 5, 1, 0, 0, 2, 3, 2, 0], float)
    assert list(vs.local_peaks(score, pos, 2)) == [2, 7]
    assert list(vs.local_peaks(score, pos, 1)) == [2]
    rows = []
    for trial, est in enumerate([pos[[2]], pos[[5]], np.empty((0, 3))]):
        s = vs.score_trial(pos[[2]], est)
        s.update(method="ours-l21", snr=1, trial=trial, time_s=1.0 + trial)
        rows.append(s)
    (r,) = vs.summarize(rows)
    assert r["n"] == 3 and r["n_empty"] == 1
    assert r["all_found"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(1 / 3)
    assert r["err_true_mm"] == pytest.approx(30.0)  # median of 0, 30, inf
    assert r["precision"] == pytest.approx(0.5)  # nan (empty) left out
    assert r["time_s"] == pytest.approx(2.0)


def test_markdown_block_is_replaced(vs, tmp_path):
    md = tmp_path / "validation.md"
    md.write_text(f"intro\n{vs.BEGIN}\nold\n{vs.END}\noutro\n")
    vs.write_markdown(md, "new table")
    text = md.read_text()
    assert "old" not in text and "new table" in text and text.startswith("intro")
    assert text.rstrip().endswith("outro")


def test_expected_sources_of_the_real_conditions(vs):
    def src(mni, peak=1.0):
        return dict(mni=list(mni), peak=peak)

    left_ac, right_ac = vs.AUDITORY_MNI["lh"], vs.AUDITORY_MNI["rh"]
    # auditory: each hemisphere's strongest source near its own auditory cortex
    assert vs.expected_sources("Left Auditory", [src(left_ac + 5), src(right_ac - 5)])
    assert not vs.expected_sources("Right Auditory", [src(left_ac), src(right_ac + [0, 0, 30])])
    assert not vs.expected_sources("Left Auditory", [src(left_ac), None])
    # visual: the strongest of the two is occipital
    assert vs.expected_sources("Left visual", [src([-20, -85, 0], 2.0), src([40, 10, 50], 1.0)])
    assert not vs.expected_sources("Right visual", [src([-20, -85, 0], 1.0),
                                                    src([40, 10, 50], 2.0)])
    assert vs.expected_sources("something else", [None, None]) is None


def test_variant_blocks_are_replaced_independently(vs, tmp_path):
    md = tmp_path / "validation.md"
    other = "<!-- BEGIN AUTO: validate_simulation.py --variant volume -->"
    md.write_text(f"{vs.BEGIN}\nmain\n{vs.END}\nmiddle\n{other}\nold volume\n{vs.END}\n")
    vs.write_markdown(md, "new volume", begin=other)
    text = md.read_text()
    assert "main" in text and "middle" in text and "new volume" in text
    assert "old volume" not in text
    assert not (tmp_path / "validation.md.tmp").exists()


def test_random_orientation_trial_and_field_power(vs, sample_forward, sample_evoked, sample_cov):
    """A random-orientation trial on the real forward has the requested SNR, and the
    per-source whitened fields of an estimate sum to its fitted data."""
    import mne

    sim = vs.Simulator(sample_evoked, sample_cov, sample_forward, orientation="random")
    evoked, truth = sim.trial(seed=3, snr=3.0, n_sources=2)
    assert np.allclose(np.linalg.norm(truth["ori"], axis=1), 1.0)
    cols = (3 * truth["idx"][:, None] + np.arange(3)).ravel()
    moments = (truth["ori"][:, :, None] * truth["tc"][:, None, :]).reshape(-1, len(sim.times))
    signal = sim.proj @ (sim.gain[:, cols] @ moments)
    assert sim.snr(signal) == pytest.approx(3.0, rel=1e-9)
    noise = evoked.data - signal
    assert np.mean((sim.whitener @ noise) ** 2) * noise.size / (sim.rank * noise.shape[1]) \
        == pytest.approx(1.0, rel=0.25)

    # A vector estimate made of the true dipoles: its fields sum to P G X.
    k_lh = [k for k in truth["idx"] if k < sim.n_lh]
    k_rh = [k for k in truth["idx"] if k >= sim.n_lh]
    order = np.concatenate([np.sort(k_lh), np.sort(k_rh)]).astype(int)
    vertices = [sim.vertno[0][np.sort(k_lh)], sim.vertno[1][np.sort(k_rh) - sim.n_lh]]
    pos_of = {k: i for i, k in enumerate(truth["idx"])}
    data = np.array([truth["ori"][pos_of[k]][:, None] * truth["tc"][pos_of[k]][None]
                     for k in order])
    stc = mne.VectorSourceEstimate(data, vertices, tmin=0.0, tstep=0.01, subject="sample")
    power, mismatch = vs.field_power(stc, sim.fwd, sim.info, sim.whitener, signal)
    assert mismatch < 1e-10
    for j, k in enumerate(order):
        field_k = sim.proj @ (sim.gain[:, 3 * k:3 * k + 3] @ data[j])
        assert power[j] == pytest.approx(np.sum((sim.whitener @ field_k) ** 2), rel=1e-10)


def test_pooled_auditory_average(vs, sample_dir):
    """The pooled auditory condition is the nave-weighted mean of the two auditory
    averages (9 trials), baseline-corrected like them."""
    evokeds = vs.real_evokeds()
    by_name = {ev.comment: ev for ev in evokeds}
    left, right = by_name["Left Auditory"], by_name["Right Auditory"]
    pooled = by_name[vs.POOLED_AUDITORY]
    assert pooled.nave == left.nave + right.nave == 9
    expected = (left.nave * left.data + right.nave * right.data) / (left.nave + right.nave)
    np.testing.assert_allclose(pooled.data, expected, rtol=1e-10, atol=1e-20)
    data = pooled.copy().pick(["meg", "eeg"]).data
    offset = np.abs(data[:, pooled.times <= 0].mean(axis=1))  # baseline (None, 0)
    assert np.all(offset < 1e-6 * np.abs(data).max(axis=1))
    assert len(vs.real_evokeds(pool_auditory=False)) == 4
    assert vs.expected_sources(vs.POOLED_AUDITORY, [None, None]) is False


# ----------------------------------------------------------------------------
# scripts/validate_default.py: the main study's scores and its quick mode
# ----------------------------------------------------------------------------
DEFAULT_SCRIPT = SCRIPT.with_name("validate_default.py")


@pytest.fixture(scope="module")
def vd():
    pytest.importorskip("ot")
    spec = importlib.util.spec_from_file_location("validate_default", DEFAULT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_emd_and_calibration_counts(vd):
    pos, amp, _ = _truth()
    assert vd.emd_mm(pos, amp, pos, amp) == pytest.approx(0.0, abs=1e-9)
    # all the estimated mass 5 mm off each true source: EMD 5 mm
    assert vd.emd_mm(pos, amp, pos + [0.005, 0, 0], amp) == pytest.approx(5.0)
    # one estimate at the first source: the second's mass travels to it
    d = np.linalg.norm(pos[0] - pos[1]) * 1e3
    w = amp[1] / amp.sum()
    assert vd.emd_mm(pos, amp, pos[:1], amp[:1]) == pytest.approx(w * d)
    assert np.isnan(vd.emd_mm(pos, amp, np.empty((0, 3)), np.empty(0)))
    est = np.array([pos[0] + [0.003, 0, 0], pos[0] + [0, 0.05, 0], pos[1]])
    assert vd.calibration_counts(pos, est, [0.95, 0.92, 0.5]) == (2, 1)
    assert vd.calibration_counts(pos, est, None) == (0, 0)


def test_confidence_formats_and_verdicts(vd):
    class Result:
        confidence = {3: 1.0, 7: 0.4}

    assert list(vd.confidence_of(Result(), np.array([3, 7]))) == [1.0, 0.4]
    Result.confidence = [dict(source_index=7, confidence=0.4), dict(source_index=3, confidence=1)]
    assert list(vd.confidence_of(Result(), np.array([3, 7]))) == [1.0, 0.4]
    Result.confidence = None
    assert vd.confidence_of(Result(), np.array([3])) is None

    pos, amp, tc = _truth()
    rows = []
    for method, est, conf in (("ours-default", pos, [1.0, 0.95]),
                              ("mne-sure", np.r_[pos, pos + 0.05], None),
                              ("gamma-map", pos[:1], None), ("champagne", pos + 0.03, None)):
        s = vd.score(dict(pos=pos, amp=amp, tc=tc), est, np.ones(len(est)), None, conf)
        s.update(method=method, snr=3, n_sources=2, trial=0, time_s=1.0)
        rows.append(s)
    prim, checks = vd.verdicts(rows)
    assert prim["mne-sure"]["precision"] == 0.5 and prim["champagne"]["f1"] == 0.0
    assert all(ok for _, ok, _ in checks)  # perfect default beats every imperfect anchor
    assert prim["ours-default"]["calibration"] == 1.0


@pytest.mark.slow
def test_quick_mode_writes_a_finite_table(vd, sample_forward, tmp_path, monkeypatch):
    """The --quick study (one trial, cheap methods) runs end to end and writes the
    table with finite values in every column of the methods that ran."""
    monkeypatch.setattr(vd, "CACHE", tmp_path / "cache")
    assert vd.main(["--quick", "--out", str(tmp_path), "--jobs", "1",
                    "--methods", "ours-default", "mne-sure"]) == 0
    text = (tmp_path / "validation.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ours-default |")]
    assert rows, text
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == len(vd.HEADER[0].strip("|").split("|"))
    assert int(cells[1]) == 1  # one trial
    for c in cells[2:7]:  # recall, precision, F1, loc. error, EMD
        assert np.isfinite(float(c.split()[0])), cells
    assert (tmp_path / "figures" / "validation_default.png").exists()
    data = list(vd.read_rows(tmp_path / "cache" / "trials-quick.csv"))
    # amendment 2: ours' grid rows and each anchor with ours' clustering come with them
    assert {r["method"] for r in data} == {"oracle-nearest", "ours-default", "mne-sure",
                                          "ours-default grid", "ours-default centroid",
                                          "mne-sure+clusters", "mne-sure+clusters+subgrid"}
    centroid = next(r for r in data if r["method"] == "ours-default centroid")
    assert centroid["n_est"] == next(r for r in data if r["method"] == "ours-default")["n_est"]
    grid = next(r for r in data if r["method"] == "ours-default grid")
    reported = next(r for r in data if r["method"] == "ours-default")
    assert int(reported["n_est"]) <= int(grid["n_est"])  # clusters never outnumber grid rows
