"""Hostile HDF5 inputs (items 6 and 7): declared shapes and stored bytes are checked before any data
is read, external / virtual storage is refused, and no small file can make a reader allocate GBs."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hostile_inputs import ROOT, no_hang

from toc.codebook.encode import open_features
from toc.data.files import read_h5, read_order
from toc.data.hdf5 import open_h5
from toc.data.vggsound import read_text_features
from toc.errors import DataError
from toc.eval.tasks import load_task
from toc.testing.datafixtures import AVE_DIR, write_ave, write_ave_avvp, write_h5, write_pretrain
from toc.testing.hostile import (
    fifo,
    h5_external,
    h5_external_link,
    h5_scalar,
    h5_unwritten,
    h5_virtual,
)


def test_an_unwritten_order_of_3e8_rows_is_refused_before_reading(tmp_path):
    write_ave(tmp_path)
    order = tmp_path / AVE_DIR / "train_order.h5"
    h5_unwritten(order, "order", (300_000_000,), chunks=(4096,))
    assert order.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"train_order.h5, key 'order'"):
        load_task("ave", data_root=tmp_path)
    with pytest.raises(DataError, match="more rows than the features have"):
        # Even fully written, an order cannot list more distinct rows than the features have.
        write_h5(order, "order", np.arange(6, dtype=np.int64), compress=False)
        read_order(order, 5)


def _zeros_written_early(path, key, shape, chunks):
    """A deflated dataset whose every chunk is written (zeros, at creation): data really stored,
    a few MB on disk for gigabytes declared."""
    with h5py.File(path, "w") as handle:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(chunks)
        dcpl.set_deflate(1)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
        dcpl.set_fill_value(np.array(0.0))
        h5py.h5d.create(handle.id, key.encode(), h5py.h5t.NATIVE_DOUBLE, h5py.h5s.create_simple(shape), dcpl=dcpl)
    return path


def test_labels_declaring_gigabytes_are_refused_by_size(tmp_path):
    path = _zeros_written_early(tmp_path / "labels.h5", "avadataset", (1_000_000, 10, 29), (250_000, 10, 29))
    assert path.stat().st_size < 10 << 20
    with pytest.raises(DataError, match="too large to read whole"):
        read_h5(path, "avadataset", (None, 10, 29))


def test_text_features_shape_is_checked_before_reading(tmp_path):
    write_pretrain(tmp_path)
    path = tmp_path / "vggsound40k/data/text_features.h5"
    with h5py.File(path, "a") as handle:
        del handle["features"]
        handle.create_dataset("features", shape=(2, 10, 40_000_000), dtype="f4", chunks=(1, 10, 1_000_000),
                              compression="gzip")
    with pytest.raises(DataError, match=r"text_features.h5, key 'features'"):
        read_text_features(path)


@pytest.mark.parametrize("make", ["external", "virtual", "external-link"])
def test_storage_outside_the_file_is_refused_without_touching_it(tmp_path, make):
    pipe = fifo(tmp_path / "pipe")
    path = tmp_path / "x.h5"
    if make == "external":
        h5_external(path, "x", (3, 10, 128), pipe)
    elif make == "virtual":
        h5_virtual(path, "x", (3,), pipe)
    else:
        h5_external_link(path, "x", pipe)
    with no_hang(20), pytest.raises(DataError, match="x.h5"):
        features = open_features(path, "x")
        features.read(np.arange(3))


def test_external_storage_in_a_task_file_does_not_hang_eval(tmp_path):
    write_ave(tmp_path)
    pipe = fifo(tmp_path / "pipe")
    target = tmp_path / AVE_DIR / "audio_feature.h5"
    target.unlink()
    h5_external(target, "avadataset", (5, 10, 128), pipe)
    with no_hang(30), pytest.raises(DataError, match="external storage"):
        data = load_task("ave", data_root=tmp_path)
        data.sets["ave/audio"].read(np.arange(5))


def test_scalar_and_string_datasets_are_one_line_errors(tmp_path):
    h5_scalar(tmp_path / "s.h5", "x")
    with pytest.raises(DataError, match=r"s.h5, key 'x': wrong shape"):
        read_h5(tmp_path / "s.h5", "x", (None,))
    with h5py.File(tmp_path / "t.h5", "w") as handle:
        handle.create_dataset("x", data=np.array([b"a", b"b"]))
    with pytest.raises(DataError, match="wrong dtype"):
        open_features(tmp_path / "t.h5")


def test_a_filter_plugin_is_never_searched_for(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as handle:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4,))
        dcpl.set_filter(32015, h5py.h5z.FLAG_OPTIONAL, ())  # zstd: a plug-in HDF5 would look for
        space = h5py.h5s.create_simple((8,))
        h5py.h5d.create(handle.id, b"x", h5py.h5t.NATIVE_INT64, space, dcpl=dcpl)
    with open_h5(path) as h5, pytest.raises(DataError, match="filter 32015"):
        h5.dataset("x")


def test_no_small_h5_input_reaches_a_gigabyte(tmp_path):
    """Peak RSS of one process loading every declared-huge file above (torch imported, as `toc`)."""
    write_ave(tmp_path / "a")
    h5_unwritten(tmp_path / "a" / AVE_DIR / "train_order.h5", "order", (300_000_000,), chunks=(4096,))
    write_ave_avvp(tmp_path / "b")
    h5_unwritten(tmp_path / "b" / "AVE_AVVP/ave_avvp_labels.h5", "avadataset", (10_000_000, 10, 13), dtype="f8",
                 chunks=(10_000, 10, 13))
    write_pretrain(tmp_path / "c")
    text = tmp_path / "c" / "vggsound40k/data/text_features.h5"
    with h5py.File(text, "a") as handle:
        del handle["features"]
        handle.create_dataset("features", shape=(2, 10, 40_000_000), dtype="f4", chunks=(1, 10, 1_000_000))
    encode_input = h5_unwritten(tmp_path / "e.h5", "x", (10_000_000, 10, 128), dtype="f8", chunks=(1000, 10, 128),
                                compression="gzip")
    script = f"""
import json, resource, torch
from toc.data.layout import resolve_paths
from toc.data.vggsound import load_pretrain
from toc.eval.tasks import load_task
from toc.codebook.encode import open_features
from toc.errors import DataError
outcomes = []
for attempt in (lambda: load_task("ave", data_root="{tmp_path / 'a'}"),
                lambda: load_task("ave-avvp", data_root="{tmp_path / 'b'}"),
                lambda: load_pretrain(resolve_paths("pretrain", data_root="{tmp_path / 'c'}")),
                lambda: open_features("{encode_input}")):
    try:
        attempt()
        outcomes.append("loaded")
    except DataError:
        outcomes.append("refused")
# VmHWM is this process image's own peak (ru_maxrss would also count the RSS of the forking
# parent, i.e. of whatever pytest had accumulated before this test).
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
peak = int(status["VmHWM"].split()[0]) if "VmHWM" in status else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"outcomes": outcomes, "rss_kb": peak}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcomes"] == ["refused"] * 4
    assert report["rss_kb"] < 1 << 20, report


def test_legitimate_compressed_features_still_load(tmp_path):
    write_ave(tmp_path)
    data = load_task("ave", data_root=tmp_path)
    assert data.sets["ave/audio"].read(np.arange(5)).shape == (5, 10, 128)
