"""`meeg-inverse cohort` given bad input: one clear message, exit status 2, nothing written.

Each case is a kind of mistake a new user makes (a typo in a label, a wrong scheduler
address, a read-only dataset, a run without events); none runs a localization, so the
module stays fast. The dataset is the one of tests/test_cohort.py (module-scoped).
"""

import pytest

mne = pytest.importorskip("mne")
pytest.importorskip("mne_bids")
pytest.importorskip("distributed")




def test_result_report_reads_input_files(sample_paths, tmp_path):
    """A cohort passes its noise covariance as a file (a TypeError in the report before)."""
    from meeg_inverse.report import write_result_report

    evoked = mne.read_evokeds(sample_paths["evoked"], condition="Left Auditory",
                              baseline=(None, 0), verbose=False).pick("eeg")  # fast to draw
    cov = mne.pick_channels_cov(mne.read_cov(sample_paths["cov"], verbose=False),
                                evoked.ch_names, verbose=False)
    cov_file = tmp_path / "noise-cov.fif"
    cov.save(cov_file, verbose=False)
    files = write_result_report(tmp_path, {"sources": []}, {},
                                inputs={"evoked": evoked, "noise_cov": str(cov_file)})
    report = mne.open_report(tmp_path / files["report_h5"])
    titles = [c.name for c in report._content] + [c.section for c in report._content]
    assert "Inputs: evoked and noise covariance" in titles, titles
    page = (tmp_path / files["report"]).read_text()
    assert "noise covariance channels</th><td>60<" in page  # read from the file
