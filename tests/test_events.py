from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger.errors import InputFileError, SchemaError
from trigger.events import EventWriter, iter_batches, open_events, read_events


def test_writer_round_trips_events_attrs_and_extras(tmp_path: Path, events: np.ndarray) -> None:
    path = tmp_path / "out.h5"
    scores = np.arange(len(events), dtype=np.float32)
    attrs = {"generator": "test", "seed": 7, "settings": {"a": [1, 2]}}
    with EventWriter(path, attrs=attrs, extras={"score": np.float32, "bx": np.int64}) as writer:
        writer.append(events[:600], score=scores[:600], bx=np.arange(600))
        writer.append(events[600:], score=scores[600:], bx=np.arange(600, 1000))
    with open_events(path) as f:
        assert f.n_events == 1000
        np.testing.assert_array_equal(f.read(), events)
        assert f.attrs["seed"] == 7 and f.attrs["settings"] == {"a": [1, 2]}
        assert set(f.extra_datasets) == {"score", "bx"}
        batch = next(f.iter_batches(100, start=250, extras=("score",)))
        np.testing.assert_array_equal(batch.extras["score"], scores[250:350])
    with h5py.File(path) as h5:
        assert h5["Particles"].compression == "gzip"
        assert list(h5["Particles_Names"][:]) == [b"Pt", b"Eta", b"Phi", b"Class"]
        assert h5["Particles_Classes"][0] == b"MET_class_1"


def test_batches_cover_a_span_exactly_once(event_file: Path, events: np.ndarray) -> None:
    batches = list(iter_batches(event_file, batch_size=128, start=10, stop=700))
    assert [b.start for b in batches] == list(range(10, 700, 128))
    assert max(len(b.particles) for b in batches) == 128
    np.testing.assert_array_equal(np.concatenate([b.particles for b in batches]), events[10:700])


def test_float64_file_in_the_public_layout_reads_unchanged(tmp_path: Path, events: np.ndarray) -> None:
    path = tmp_path / "background_for_training.h5"
    with h5py.File(path, "w") as h5:  # as the public files are written: float64, no chunking
        h5["Particles"] = events.astype(np.float64)
        h5["Particles_Names"] = np.array([b"Pt", b"Eta", b"Phi", b"Class"])
        h5["Particles_Classes"] = np.array([b"MET_class_1", b"Four_Ele_class_2",
                                            b"Four_Mu_class_3", b"Ten_Jet_class_4"])
        h5["EvtId"] = np.arange(len(events), dtype=np.int64)
    data = read_events(path, 5, 15)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, events[5:15])


def test_appending_continues_an_existing_file(tmp_path: Path, events: np.ndarray) -> None:
    path = tmp_path / "a.h5"
    with EventWriter(path) as writer:
        writer.append(events[:100])
    with EventWriter(path, append=True) as writer:
        writer.append(events[100:300])
    np.testing.assert_array_equal(read_events(path), events[:300])


def test_writer_rejects_wrong_shapes_and_undeclared_extras(tmp_path: Path, events: np.ndarray) -> None:
    with EventWriter(tmp_path / "w.h5", extras={"score": np.float32}) as writer:
        with pytest.raises(ValueError, match=r"expected \(n, 19, 4\)"):
            writer.append(events[:, :, :3])
        with pytest.raises(ValueError, match="do not match"):
            writer.append(events)
        with pytest.raises(ValueError, match="rows for"):
            writer.append(events, score=np.zeros(3))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda _: None, InputFileError, "no such file"),
        (lambda p: p.mkdir(), InputFileError, "is a directory"),
        (lambda p: p.write_text("pT,eta,phi\n1,2,3\n"), InputFileError, "not an HDF5 file"),
        (lambda p: h5py.File(p, "w").create_dataset("Particle", data=np.zeros((3, 19, 4))),
         SchemaError, "no dataset 'Particles'.*did you mean 'Particle'"),
        (lambda p: h5py.File(p, "w").create_dataset("Particles", data=np.zeros((3, 19, 3))),
         SchemaError, r"shape \(N, 19, 3\), expected \(N, 19, 4\)"),
        (lambda p: h5py.File(p, "w").create_dataset("Particles", data=np.zeros((3, 76))),
         SchemaError, r"shape \(N, 76\)"),
        (lambda p: h5py.File(p, "w").create_dataset("Particles", data=np.zeros((3, 19, 4), int)),
         SchemaError, "dtype int64, expected float32 or float64"),
    ],
    ids=["missing", "directory", "csv", "missing-dataset", "three-features", "flat", "integer"],
)
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path: Path, make, error, message) -> None:
    path = tmp_path / "bad.h5"
    handle = make(path)
    if isinstance(handle, h5py.Dataset):
        handle.file.close()
    with pytest.raises(error, match=message) as info:
        open_events(path)
    assert str(path) in str(info.value)


def test_truncated_file_is_reported_as_truncated(event_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5"
    data = event_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"truncated HDF5 file \(\d+ of \d+ bytes present\)"):
        open_events(cut)


def test_a_file_another_process_writes_is_reported_as_locked(event_file: Path) -> None:
    import subprocess
    import sys

    hold = "import sys, time, h5py\nf = h5py.File(sys.argv[1], 'a')\nprint('open', flush=True)\ntime.sleep(60)"
    writer = subprocess.Popen([sys.executable, "-c", hold, str(event_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        with pytest.raises(InputFileError, match="locked by another process, which is writing it"):
            open_events(event_file)
    finally:
        writer.kill()
        writer.communicate()
    with open_events(event_file) as events:  # its writer gone, it reads again
        assert events.n_events > 0


def test_span_outside_the_file_is_rejected(event_file: Path) -> None:
    with open_events(event_file) as f, pytest.raises(ValueError, match="outside"):
        f.read(900, 1200)
