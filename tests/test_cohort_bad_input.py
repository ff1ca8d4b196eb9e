"""`meeg-inverse cohort` given bad input: one clear message, exit status 2, nothing written.

Each case is a kind of mistake a new user makes (a typo in a label, a wrong scheduler
address, a read-only dataset, a run without events); none runs a localization, so the
module stays fast. The dataset is the one of tests/test_cohort.py (module-scoped).
"""

import shutil
import socket
import threading
from pathlib import Path

import pytest

mne = pytest.importorskip("mne")
pytest.importorskip("mne_bids")
pytest.importorskip("distributed")

from _cohort_data import TASK  # noqa: E402
from test_cohort import dataset  # noqa: E402,F401  (the module-scoped BIDS dataset)

from meeg_inverse.cli import main  # noqa: E402
from meeg_inverse.cohort import plan_cohort  # noqa: E402
from meeg_inverse.errors import InputError  # noqa: E402


def _cli(capsys, *args):
    status = main(["cohort", *map(str, args), "-q"])
    return status, capsys.readouterr().err


def _bad(capsys, out, *args, match):
    """Exit status 2, one message (no traceback) naming the problem, no output folder."""
    status, err = _cli(capsys, *args, "--out", out)
    assert status == 2, err
    assert match in err, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert not Path(out).exists()
    return err


def test_unknown_labels_are_named_before_any_work(dataset, tmp_path, capsys):
    root, _ = dataset
    # a session level the dataset does not have: said, not silently ignored
    err = _bad(capsys, tmp_path / "o", root, "--task", TASK, "--sessions", "01",
               match="Session(s) '01' not in the dataset")
    assert "no session level" in err
    # a condition no run has (a typo): exit 2 up front, not 7 runs recorded as failed
    err = _bad(capsys, tmp_path / "o", root, "--task", TASK, "--conditions", "tone", "tonne",
               match="Condition(s) 'tonne' in no events file")
    assert "'tone'" in err and "'square'" in err  # the choices
    # a condition some runs lack is a mixed paradigm, still fine (recorded per run),
    # also when no selected subject has it (one command, several subject lists)
    _, tasks, problems = plan_cohort(root, TASK, conditions=["tone"])
    assert {t.subject for t in tasks} == {"sim01", "sim02"} and problems
    _, tasks, _ = plan_cohort(root, TASK, subjects=["sim01"], conditions=["tone", "square"])
    assert [t.condition for t in tasks] == ["tone"]


@pytest.fixture
def no_events_dataset(dataset, tmp_path):
    """A copy of the dataset where one run's events.tsv is empty and another's has no rows."""
    root, _ = dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in ("sub-sim02", "sub-bad01")])
    eeg = copy / "sub-eeg01" / "eeg"
    (eeg / f"sub-eeg01_task-{TASK}_run-1_events.tsv").write_text("")
    events2 = eeg / f"sub-eeg01_task-{TASK}_run-2_events.tsv"
    events2.write_text(events2.read_text().splitlines()[0] + "\n")
    return copy


def test_run_without_events_is_recorded_with_a_clear_message(no_events_dataset):
    _, tasks, problems = plan_cohort(no_events_dataset, TASK)
    assert ("eeg01", "1") not in {(t.subject, t.run) for t in tasks}
    mine = [p for p in problems if p["subject"] == "eeg01"]
    assert [p["run"] for p in mine] == ["1", "2"]
    assert all("lists no event" in p["message"] for p in mine), mine


class _NotDask(threading.Thread):
    """A TCP server that answers like an HTTP server (a wrong port of a real host)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            conn.close()


def test_bad_scheduler_address_is_an_input_error(dataset, tmp_path, capsys):
    root, _ = dataset
    _bad(capsys, tmp_path / "o", root, "--task", TASK, "--scheduler", "garbage://x",
         match="is not a Dask scheduler address")
    server = _NotDask()
    server.start()
    try:
        _bad(capsys, tmp_path / "o", root, "--task", TASK, "--scheduler",
             f"tcp://127.0.0.1:{server.port}", match="is not a Dask scheduler")
    finally:
        server.sock.close()


def test_unwritable_derivatives_folder_is_an_input_error(dataset, tmp_path, capsys):
    root, _ = dataset
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _bad(capsys, blocker / "out", root, "--task", TASK, "--workers", "0",
         match="cannot be written")
    # a read-only file system (root ignores permission bits, so not chmod)
    _bad(capsys, "/proc/meeg-inverse-out", root, "--task", TASK, "--workers", "0",
         match="cannot be written")
    assert not list(tmp_path.glob(".meeg-inverse-probe-*"))


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


def test_interrupt_removes_what_killed_workers_left(dataset, tmp_path, monkeypatch, capsys):
    """Ctrl-C: the closed workers' staging folders and locks go; the CLI says what is kept."""
    import meeg_inverse.cohort as cohort

    root, _ = dataset
    out = tmp_path / "out"
    groups, _, _ = plan_cohort(root, TASK, subjects=["sim01"], out=out)
    folder = groups[0].folder
    folder.mkdir(parents=True)
    # what a worker killed in the middle of a write leaves (pid 2**22 + 1: above pid_max)
    (folder / ".meeg-inverse-partial-4194305-0a1b2c3d").mkdir()
    (folder / ".meeg-inverse-partial-4194305-0a1b2c3d" / "sources-stc.h5").write_text("half")
    (folder / ".tmp4194305-sub-sim01_task-cohort_inv.h5").write_text("half")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cohort, "prepare_group", interrupted)
    status, err = _cli(capsys, root, "--task", TASK, "--subjects", "sim01", "--workers", "0",
                       "--out", out)
    assert status == 130, err
    assert "interrupted (SIGINT)" in err and "run the same command again to resume" in err
    assert "no output was written" not in err and "Traceback" not in err
    assert [p.name for p in folder.iterdir()] == [], list(folder.iterdir())


def test_truncated_recording_is_named_with_a_fix(dataset):
    """bad01's data file is cut short: its message names the file (was MNE's 'please report')."""
    import meeg_inverse.cohort as cohort

    root, _ = dataset
    groups, _, _ = plan_cohort(root, TASK, subjects=["bad01"])
    with pytest.raises(InputError, match=r"sub-bad01_task-cohort_run-1_eeg\.set cannot be read"
                       r".*Incorrect number of samples.*\n  Fix: check or replace that file"):
        cohort._read_raw(groups[0].recordings[0], Path(root).resolve())


@pytest.mark.parametrize("workers", [-1, 2.5, "2", True, 10_000])
def test_workers_out_of_range_is_an_input_error(dataset, tmp_path, workers):
    """The Python entry point checks --workers too (-1 reached LocalCluster; 10 000 processes)."""
    from meeg_inverse.cohort import run_cohort

    root, _ = dataset
    with pytest.raises(InputError, match="workers"):
        run_cohort(root, TASK, workers=workers, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_conditions_with_the_same_label_get_their_own_folders(dataset, tmp_path):
    """'square' and 's-quare' both become desc-square: they overwrote one folder."""
    root, _ = dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy, symlinks=True, ignore=lambda d, names: [
        n for n in names if Path(d) == Path(root) and n.startswith("sub-") and n != "sub-eeg01"])
    for events in (copy / "sub-eeg01" / "eeg").glob("*_events.tsv"):
        lines = events.read_text().splitlines()
        lines[1:] = [line.replace("\trt\t", "\ts-quare\t") for line in lines[1:]]
        events.write_text("\n".join(lines) + "\n")
    _, tasks, _ = plan_cohort(copy, TASK, subjects=["eeg01"], conditions=["square", "s-quare"])
    folders = [t.folder.name for t in tasks]
    assert len(tasks) == 4 and len(set(folders)) == 4, folders
    assert all("_desc-square" in f for f in folders)
    # a condition whose label is its own keeps the plain name
    _, tasks, _ = plan_cohort(root, TASK, subjects=["eeg01"], conditions=["square"])
    assert tasks[0].folder.name == "sub-eeg01_task-cohort_run-1_desc-square"


def test_a_label_given_twice_gives_its_tasks_once(dataset):
    """--subjects sim01 sim01 planned sim01's run twice (one 'done', one 'skipped')."""
    root, _ = dataset
    _, tasks, _ = plan_cohort(root, TASK, subjects=["sim01", "sim01"],
                              conditions=["tone", "tone"])
    assert [t.name for t in tasks] == ["sub-sim01_task-cohort_run-1_desc-tone"]
