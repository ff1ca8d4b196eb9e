"""data_fetchers against a local HTTP server (127.0.0.1 only) serving archives built here."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

import data_fetchers as df
from data_fetchers import (
    REGISTRY,
    ChecksumError,
    DatasetError,
    DatasetSpec,
    DownloadError,
    FileSpec,
    IntegrityError,
    UnknownDatasetError,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------------------------
# Guard: nothing in this module may reach beyond 127.0.0.1.


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise AssertionError(f"test tried to reach {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    # Never read or create the user's real caches.
    monkeypatch.delenv(df.ENV_VAR, raising=False)
    monkeypatch.delenv("MNE_DATA", raising=False)


# --------------------------------------------------------------------------------------------
# The server


class _State:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None  # body bytes sent before the connection is cut
        self.cuts_left = 0  # how many responses to cut
        self.ignore_range = False
        self.lock = threading.Lock()

    def ranges(self, name):
        return [r for p, r in self.requests if p == name and r]

    def count(self, name=None):
        return sum(1 for p, _ in self.requests if name is None or p == name)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        state = self.server.state
        name = urlsplit(self.path).path.lstrip("/")
        rng = self.headers.get("Range")
        with state.lock:
            state.requests.append((name, rng))
            cut = state.cut_after if state.cuts_left > 0 else None
            if cut is not None:
                state.cuts_left -= 1
        data = state.files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = _State()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    httpd.state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------
# Fake datasets


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


SAMPLE_FILES = {
    "MNE-sample-data/MEG/sample/sample_audvis_raw.fif": os.urandom(300_000),  # incompressible
    "MNE-sample-data/MEG/sample/sample_audvis-ave.fif": b"evoked",
    "MNE-sample-data/subjects/sample/mri/T1.mgz": b"T1",
}


@pytest.fixture
def fake_sample(server, monkeypatch):
    """Registry override: 'sample' is a ~300 kB tar.gz served by the local server."""
    archive = _tar_gz(SAMPLE_FILES)
    real = REGISTRY["sample"]
    fspec = FileSpec(fname=real.files[0].fname, url="http://127.0.0.1:9/unused",
                     known_hash=_sha256(archive), unpack="tar", dest=".",
                     check=tuple(SAMPLE_FILES))
    spec = DatasetSpec(name="sample", description="fake sample", folder="MNE-sample-data",
                       files=(fspec,))
    monkeypatch.setitem(REGISTRY, "sample", spec)
    server.files[fspec.fname] = archive
    return dict(spec=spec, fname=fspec.fname, archive=archive)


def _assert_sample_installed(folder):
    for name, data in SAMPLE_FILES.items():
        assert (folder.parent / name).read_bytes() == data


def _leftovers(root):
    """Anything in the cache root other than dataset folders (lock files included)."""
    return sorted(p.name for p in root.iterdir()
                  if not (p.is_dir() and not p.name.startswith(".")))


# --------------------------------------------------------------------------------------------
# Tests


def test_good_archive_is_extracted(server, fake_sample, tmp_path):
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    assert folder == tmp_path / "MNE-sample-data" == df.dataset_path("sample", tmp_path)
    _assert_sample_installed(folder)
    assert df.has_dataset("sample", tmp_path)
    assert _leftovers(tmp_path) == []  # archive, .part, temp folders and marker are gone
    record = json.loads((folder / ".meeg-inverse.json").read_text())
    assert record["dataset"] == "sample"
    assert record["files"][0]["known_hash"] == fake_sample["spec"].files[0].known_hash
    assert server.count() == 1


def test_progress_bar_does_not_break_download(server, fake_sample, tmp_path, capsys):
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=True)
    _assert_sample_installed(tmp_path / "MNE-sample-data")
    assert fake_sample["fname"] in capsys.readouterr().err


def test_checksum_mismatch_deletes_file_and_explains(server, fake_sample, tmp_path,
                                                     monkeypatch):
    bad = "sha256:" + "0" * 64
    spec = fake_sample["spec"]
    monkeypatch.setitem(REGISTRY, "sample", DatasetSpec(
        name="sample", description="", folder=spec.folder,
        files=(FileSpec(**{**spec.files[0].__dict__, "known_hash": bad}),)))
    with pytest.raises(ChecksumError) as info:
        df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    msg = str(info.value)
    actual = hashlib.sha256(fake_sample["archive"]).hexdigest()
    assert fake_sample["fname"] in msg and "0" * 64 in msg and actual in msg
    assert "again" in msg and "delete" in msg and str(tmp_path) in msg
    assert info.value.expected == bad and info.value.actual == "sha256:" + actual
    assert isinstance(info.value, DatasetError) and isinstance(info.value, RuntimeError)
    assert not (tmp_path / "MNE-sample-data").exists()
    assert _leftovers(tmp_path) == []  # no archive, no .part
    assert not df.has_dataset("sample", tmp_path)


def test_interrupted_download_resumes_on_next_call(server, fake_sample, tmp_path):
    server.cut_after, server.cuts_left = 150_000, 1
    with pytest.raises(DownloadError) as info:
        df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                         retries=0)
    part = tmp_path / f".{fake_sample['fname']}.part"
    assert info.value.part_file == part and part.exists()
    kept = part.stat().st_size
    assert 0 < kept <= 150_000
    assert "resume" in str(info.value) and str(part) in str(info.value)
    assert not (tmp_path / "MNE-sample-data").exists()
    assert not (tmp_path / fake_sample["fname"]).exists()  # nothing in the final location

    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                              retries=0)
    assert server.ranges(fake_sample["fname"]) == [f"bytes={kept}-"]
    _assert_sample_installed(folder)  # extraction succeeded, so the hash matched
    assert _leftovers(tmp_path) == []


def test_interruption_is_resumed_within_one_call_with_retries(server, fake_sample, tmp_path,
                                                              monkeypatch):
    waits = []
    monkeypatch.setattr("data_fetchers._download.time.sleep", waits.append)
    server.cut_after, server.cuts_left = 100_000, 2
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                              retries=2)
    _assert_sample_installed(folder)
    ranges = server.ranges(fake_sample["fname"])
    assert len(ranges) == 2 and all(r != "bytes=0-" for r in ranges)
    assert waits == [1.0, 2.0]  # exponential back-off between automatic resumes


def test_server_ignoring_range_restarts_from_zero(server, fake_sample, tmp_path):
    server.cut_after, server.cuts_left = 150_000, 1
    with pytest.raises(DownloadError):
        df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                         retries=0)
    server.ignore_range = True
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                              retries=0)
    assert len(server.ranges(fake_sample["fname"])) == 1  # asked, got 200, rewrote the file
    _assert_sample_installed(folder)


def test_stale_complete_part_file_is_finished_by_416(server, fake_sample, tmp_path):
    part = tmp_path / f".{fake_sample['fname']}.part"
    part.write_bytes(fake_sample["archive"])  # interrupted between transfer and rename
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    _assert_sample_installed(folder)


def test_no_network_names_url_and_cache_folder(fake_sample, tmp_path, closed_port_url):
    with pytest.raises(DownloadError) as info:
        df.fetch_dataset("sample", tmp_path, base_url=closed_port_url, progress=False,
                         retries=0, timeout=5)
    msg = str(info.value)
    url = f"{closed_port_url}/{fake_sample['fname']}"
    assert info.value.url == url and url in msg
    assert str(tmp_path / fake_sample["fname"]) in msg  # where to put a manual download
    assert str(tmp_path / "MNE-sample-data") in msg  # where it will be installed
    assert "by hand" in msg and "connection refused" in msg
    assert "Traceback" not in msg and info.value.__cause__ is None
    assert not (tmp_path / "MNE-sample-data").exists()


def test_manually_downloaded_archive_is_used(fake_sample, tmp_path, closed_port_url):
    (tmp_path / fake_sample["fname"]).write_bytes(fake_sample["archive"])
    folder = df.fetch_dataset("sample", tmp_path, base_url=closed_port_url, progress=False,
                              retries=0)
    _assert_sample_installed(folder)


def test_wrong_file_in_cache_is_replaced(server, fake_sample, tmp_path):
    (tmp_path / fake_sample["fname"]).write_bytes(b"not the archive")
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    _assert_sample_installed(folder)
    assert server.count() == 1


def test_wrong_file_in_cache_without_network_is_explained(fake_sample, tmp_path,
                                                          closed_port_url):
    (tmp_path / fake_sample["fname"]).write_bytes(b"not the archive")
    with pytest.raises(DownloadError, match="had sha256 .* instead of"):
        df.fetch_dataset("sample", tmp_path, base_url=closed_port_url, progress=False,
                         retries=0)
    assert not (tmp_path / fake_sample["fname"]).exists()


def test_http_404_is_a_download_error(server, fake_sample, tmp_path):
    server.files.clear()
    with pytest.raises(DownloadError, match="HTTP 404"):
        df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)


def test_present_dataset_is_not_downloaded(server, fake_sample, tmp_path):
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    n = server.count()
    assert df.fetch_dataset("sample", tmp_path, base_url=server.base_url,
                            progress=False) == tmp_path / "MNE-sample-data"
    assert server.count() == n


def test_dataset_downloaded_by_mne_is_reused(server, fake_sample, tmp_path):
    for name in SAMPLE_FILES:  # as mne.datasets.sample.data_path leaves it: no record file
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"from MNE")
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    assert server.count() == 0


def test_force_downloads_again_and_keeps_user_files(server, fake_sample, tmp_path):
    folder = df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    raw = folder / "MEG/sample/sample_audvis_raw.fif"
    raw.write_bytes(b"damaged")
    (folder / "my-notes.txt").write_text("mine")
    n = server.count()
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False, force=True)
    assert server.count() == n + 1
    _assert_sample_installed(folder)
    assert (folder / "my-notes.txt").read_text() == "mine"
    assert _leftovers(tmp_path) == []


def test_interrupted_install_is_redone(server, fake_sample, tmp_path):
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    (tmp_path / ".sample.meeg-inverse-incomplete").touch()  # crash while moving files
    assert not df.has_dataset("sample", tmp_path)
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    assert server.count() == 2 and df.has_dataset("sample", tmp_path)


def test_url_override(server, fake_sample, tmp_path):
    server.files["elsewhere.tgz"] = fake_sample["archive"]
    folder = df.fetch_dataset("sample", tmp_path, url=f"{server.base_url}/elsewhere.tgz",
                              progress=False)
    _assert_sample_installed(folder)
    assert server.requests[0][0] == "elsewhere.tgz"


def test_unsafe_tar_member_is_refused(server, tmp_path, monkeypatch):
    archive = _tar_gz({"../escape.txt": b"x"})
    monkeypatch.setitem(REGISTRY, "sample", DatasetSpec(
        name="sample", description="", folder="MNE-sample-data",
        files=(FileSpec(fname="evil.tar.gz", url="", known_hash=_sha256(archive),
                        unpack="tar", check=("MNE-sample-data/x",)),)))
    server.files["evil.tar.gz"] = archive
    with pytest.raises(IntegrityError, match="unsafe"):
        df.fetch_dataset("sample", tmp_path / "root", base_url=server.base_url,
                         progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert _leftovers(tmp_path / "root") == [".sample.meeg-inverse-incomplete"]


def test_fsaverage_two_zips_merge_into_subjects_dir(server, tmp_path, monkeypatch):
    root_files = {"fsaverage/surf/lh.white": b"lh", "fsaverage/label/lh.aparc.annot": b"a"}
    bem_files = {"bem/fsaverage-trans.fif": b"t", "bem/inner_skull.surf": b"s"}
    root_zip, bem_zip = _zip(root_files), _zip(bem_files)
    monkeypatch.setitem(REGISTRY, "fsaverage", DatasetSpec(
        name="fsaverage", description="", folder="MNE-fsaverage-data/fsaverage",
        files=(FileSpec("MNE-fsaverage-root.zip", "", _sha256(root_zip), "zip",
                        "MNE-fsaverage-data", tuple(root_files)),
               FileSpec("MNE-fsaverage-bem.zip", "", _sha256(bem_zip), "zip",
                        "MNE-fsaverage-data/fsaverage", tuple(bem_files)))))
    server.files.update({"MNE-fsaverage-root.zip": root_zip, "MNE-fsaverage-bem.zip": bem_zip})
    fs_dir = df.fetch_dataset("fsaverage", tmp_path, base_url=server.base_url, progress=False)
    assert fs_dir == tmp_path / "MNE-fsaverage-data" / "fsaverage"
    for name, data in root_files.items():
        assert (fs_dir.parent / name).read_bytes() == data
    for name, data in bem_files.items():
        assert (fs_dir / name).read_bytes() == data
    # Like mne.datasets.fetch_fsaverage: only the archive whose files are missing is fetched.
    (fs_dir / "bem/inner_skull.surf").unlink()
    n_root = server.count("MNE-fsaverage-root.zip")
    df.fetch_dataset("fsaverage", tmp_path, base_url=server.base_url, progress=False)
    assert server.count("MNE-fsaverage-root.zip") == n_root
    assert server.count("MNE-fsaverage-bem.zip") == 2
    assert (fs_dir / "bem/inner_skull.surf").read_bytes() == b"s"
    assert _leftovers(tmp_path) == []


def _eeglab_files(n_bytes_fdt=None):
    import scipy.io

    nbchan, pnts = 2, 16
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"EEG": {"nbchan": nbchan, "pnts": pnts, "trials": 1,
                                   "srate": 128.0, "data": "test_raw.fdt"}})
    fdt = np.zeros(nbchan * pnts, "<f4").tobytes()
    if n_bytes_fdt is not None:
        fdt = fdt[:n_bytes_fdt]
    locs = b"1\t0\t0.5\tFPz\n2\t23\t0.71\tEOG1\n"
    return {"test_raw.set": buf.getvalue(), "test_raw.fdt": fdt, "test_chans.locs": locs}


def test_eeglab_files_verified_by_format(server, tmp_path):
    server.files.update(_eeglab_files())
    folder = df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)
    assert folder == tmp_path / REGISTRY["eeglab"].folder
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "test_chans.locs", "test_raw.fdt", "test_raw.set"]
    record = json.loads((folder / ".meeg-inverse.json").read_text())
    assert all(len(f["sha256"]) == 64 for f in record["files"])
    assert _leftovers(tmp_path) == []


def test_eeglab_truncated_data_file_is_rejected(server, tmp_path):
    server.files.update(_eeglab_files(n_bytes_fdt=100))
    with pytest.raises(IntegrityError) as info:
        df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)
    assert "test_raw.fdt" in str(info.value) and "128 bytes" in str(info.value)
    assert not (tmp_path / REGISTRY["eeglab"].folder).exists()
    assert _leftovers(tmp_path) == []


def test_eeglab_error_page_is_rejected(server, tmp_path):
    files = _eeglab_files()
    files["test_raw.set"] = b"<html>rate limited</html>"
    server.files.update(files)
    with pytest.raises(IntegrityError, match="MAT-file"):
        df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)


def test_cache_root_resolution(tmp_path, monkeypatch):
    assert df.data_root(tmp_path / "a") == tmp_path / "a"
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne"))
    assert df.data_root() == tmp_path / "mne"
    assert df.dataset_path("somato") == tmp_path / "mne" / "MNE-somato-data"
    monkeypatch.setenv(df.ENV_VAR, str(tmp_path / "ours"))
    assert df.data_root() == tmp_path / "ours"
    assert df.data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(df.ENV_VAR)
    monkeypatch.delenv("MNE_DATA")
    monkeypatch.setattr("data_fetchers._fetch._mne_config", lambda key: None)
    assert df.data_root() == Path("~/mne_data").expanduser()


def test_unwritable_cache_root_is_a_dataset_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DatasetError, match="Cannot create the data cache folder"):
        df.fetch_dataset("sample", blocker / "sub", progress=False)


def test_unknown_name_and_bad_url_argument():
    with pytest.raises(UnknownDatasetError, match="sample, somato, fsaverage, eeglab"):
        df.fetch_dataset("nope")
    assert issubclass(UnknownDatasetError, ValueError)
    with pytest.raises(ValueError, match="base_url"):
        df.fetch_dataset("fsaverage", url="http://127.0.0.1:1/x.zip")


def test_list_datasets_describes_all_four():
    info = df.list_datasets()
    assert set(df.DATASETS) <= set(info)
    for name in df.DATASETS:
        for key in ("description", "size", "url", "license", "citation", "files"):
            assert info[name][key], (name, key)


def test_registry_matches_installed_mne():
    """URLs and hashes are MNE-Python's; fail loudly when MNE changes them."""
    from mne.datasets import config

    for name in ("sample", "somato"):
        ours, theirs = REGISTRY[name], config.MNE_DATASETS[name]
        assert ours.files[0].fname == theirs["archive_name"]
        assert ours.files[0].url == theirs["url"]
        assert ours.files[0].known_hash == theirs["hash"]
        assert ours.folder == theirs["folder_name"]
    assert config.RELEASES["testing"] == df._registry.MNE_TESTING_RELEASE

    import mne.datasets._fsaverage.base as fsbase

    src = Path(fsbase.__file__).read_text()
    for f in REGISTRY["fsaverage"].files:
        assert f.url in src and f.known_hash.split(":")[1] in src
    manifests = Path(fsbase.__file__).parent
    for f, txt in zip(REGISTRY["fsaverage"].files, ("root.txt", "bem.txt")):
        names = [ln.strip() for ln in (manifests / txt).read_text().splitlines() if ln.strip()]
        assert list(f.check) == names


def test_eeglab_validator_accepts_the_shared_real_files(eeglab_dir):
    from data_fetchers._registry import validate_eeglab

    names = [f.fname for f in REGISTRY["eeglab"].files]
    validate_eeglab({n: eeglab_dir / n for n in names})


def test_eeglab_real_files_end_to_end(server, eeglab_dir, tmp_path):
    """The real registry entry, served locally from the shared copies, reads back with MNE."""
    import mne

    for f in REGISTRY["eeglab"].files:
        server.files[f.fname] = (eeglab_dir / f.fname).read_bytes()
    folder = df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)
    raw = mne.io.read_raw_eeglab(folder / "test_raw.set", preload=False, verbose=False)
    assert len(raw.ch_names) == 32 and raw.info["sfreq"] == 128
    assert df.has_dataset("eeglab", tmp_path)


def test_eeglab_partial_refetch_is_checked_against_installed_files(server, tmp_path):
    server.files.update(_eeglab_files())
    folder = df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)
    (folder / "test_raw.fdt").unlink()
    server.files["test_raw.fdt"] = server.files["test_raw.fdt"][:64]  # wrong size
    with pytest.raises(IntegrityError, match="test_raw.fdt has 64 bytes"):
        df.fetch_dataset("eeglab", tmp_path, base_url=server.base_url, progress=False)
    assert server.count("test_raw.set") == 1  # only the missing file was fetched


def test_concurrent_fetch_waits_for_the_lock(server, fake_sample, tmp_path):
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".sample.meeg-inverse-lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("folder", df.fetch_dataset(
            "sample", tmp_path, base_url=server.base_url, progress=False)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and server.count() == 0  # waiting, not downloading
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(10)
    _assert_sample_installed(result["folder"])


def test_lock_file_is_removed_after_a_fetch(server, fake_sample, tmp_path):
    lock = tmp_path / ".sample.meeg-inverse-lock"
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)
    assert not lock.exists()
    df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False)  # present
    assert not lock.exists()
    server.files.clear()
    with pytest.raises(DownloadError, match="HTTP 404"):  # a failed fetch leaves none either
        df.fetch_dataset("sample", tmp_path, base_url=server.base_url, progress=False,
                         force=True)
    assert not lock.exists()


def test_concurrent_fetches_download_once_and_leave_no_lock(server, fake_sample, tmp_path):
    folders, errors = [], []

    def fetch():
        try:
            folders.append(df.fetch_dataset("sample", tmp_path, base_url=server.base_url,
                                            progress=False))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=fetch) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert errors == [] and len(folders) == 4
    assert server.count() == 1  # the others waited, then found the dataset installed
    _assert_sample_installed(folders[0])
    assert _leftovers(tmp_path) == []  # no lock file


def test_waiter_locks_the_new_file_after_the_holder_removed_it(tmp_path):
    """The holder removes the file as it leaves: the process that waited on it must lock a
    file that a third process can see, not the removed one."""
    from data_fetchers._lock import dataset_lock

    path = tmp_path / ".x.meeg-inverse-lock"
    seen = {}

    def waiter():
        with dataset_lock(path, "x"):
            seen["visible"] = path.exists()

    with dataset_lock(path, "x"):
        worker = threading.Thread(target=waiter)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()  # waiting
    worker.join(10)
    assert seen == {"visible": True} and not path.exists()


def test_cli_fetch_exit_status_and_json(server, fake_sample, tmp_path, monkeypatch, capsys):
    """`meeg-inverse fetch`: 0 and the folder (as JSON with --json); 1 on a failed download."""
    from meeg_inverse.cli import main

    assert main(["fetch", "sample", "--path", str(tmp_path / "good"), "--base-url",
                 server.base_url, "--json", "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"name": "sample", "path": str(tmp_path / "good" / "MNE-sample-data")}
    _assert_sample_installed(Path(printed["path"]))

    spec = fake_sample["spec"]
    monkeypatch.setitem(REGISTRY, "sample", DatasetSpec(
        name="sample", description="", folder=spec.folder,
        files=(FileSpec(**{**spec.files[0].__dict__, "known_hash": "sha256:" + "0" * 64}),)))
    bad = tmp_path / "bad"
    assert main(["fetch", "sample", "--path", str(bad), "--base-url", server.base_url,
                 "-q"]) == 1
    err = capsys.readouterr().err
    assert "0" * 64 in err and "Traceback" not in err
    assert not (bad / "MNE-sample-data").exists()
