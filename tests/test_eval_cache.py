"""The encode cache keys on the content of the input files, not only on the ids: a corpus rebuilt
with the same ids (AVE's ids are row numbers) is encoded again and gives its own codes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from toc.codebook.checkpoint import load_checkpoint
from toc.errors import SettingsError
from toc.eval.cache import CheckpointCodeSource, CodeCache
from toc.eval.tasks import load_task
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import AVE_DIR, segment_values, write_ave, write_h5

N = 6


def _audio(offset: float) -> np.ndarray:
    return np.stack([segment_values(i, 10, (128,)) for i in range(N)]) * 0.1 + offset


def _corpus(root, offset: float, *, compress: bool = True):
    write_ave(root, N, train=(0, 1, 2), val=(3,), test=(4, 5), audio=_audio(offset))
    if not compress:  # a fresh uncompressed file: its size depends on the shape alone
        path = root / AVE_DIR / "audio_feature.h5"
        path.unlink()
        write_h5(path, "avadataset", _audio(offset), compress=False)
    return load_task("ave", data_root=root)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = save_reference_checkpoint(tmp_path_factory.mktemp("ckpt") / "dcid.pt")
    return CheckpointCodeSource(load_checkpoint(path))


def _codes(cache: CodeCache, data) -> np.ndarray:
    return cache.get("ave", data.sets["ave/audio"], "float64").codes[0]


@pytest.mark.parametrize("fingerprint", ["stat", "sha256"])
def test_a_rebuilt_corpus_with_the_same_ids_is_encoded_again(tmp_path, source, fingerprint):
    root, cache_dir = tmp_path / "data", tmp_path / "cache"
    first = _corpus(root, 0.0)
    cache = CodeCache(source, cache_dir, fingerprint=fingerprint)
    old = _codes(cache, first)
    assert cache.encoder_runs == 1
    # Same corpus, a new cache object: read back from disk, no encoding.
    again = CodeCache(source, cache_dir, fingerprint=fingerprint)
    np.testing.assert_array_equal(_codes(again, load_task("ave", data_root=root)), old)
    assert again.encoder_runs == 0 and again.disk_hits == 1

    rebuilt = _corpus(root, 5.0)  # the same 6 row ids, other features
    assert list(rebuilt.sets["ave/audio"].ids) == list(first.sets["ave/audio"].ids)
    fresh = CodeCache(source, cache_dir, fingerprint=fingerprint)
    new = _codes(fresh, rebuilt)
    assert fresh.encoder_runs == 1 and fresh.disk_hits == 0
    assert not np.array_equal(new, old)  # the new corpus's own codes, not the stale ones
    # What the encoder gives without any cache.
    direct = source.encode(
        rebuilt.sets["ave/audio"], "float64", dropout_seed=None, batch_size=64, progress=None
    )[0]
    np.testing.assert_array_equal(new, direct)
    # The in-memory cache of a long-lived session sees the rebuild too (here it finds the new
    # corpus's file that `fresh` wrote).
    np.testing.assert_array_equal(_codes(cache, rebuilt), new)
    assert (cache.encoder_runs, cache.disk_hits) == (1, 1)


def test_only_the_hash_sees_a_change_that_keeps_size_and_mtime(tmp_path, source):
    root = tmp_path / "data"
    data = _corpus(root, 0.0, compress=False)
    audio_file = data.sets["ave/audio"].source_files[0]
    stat_cache = CodeCache(source, tmp_path / "stat", fingerprint="stat")
    hash_cache = CodeCache(source, tmp_path / "hash", fingerprint="sha256")
    old = _codes(stat_cache, data)
    _codes(hash_cache, data)
    before = os.stat(audio_file)
    data = _corpus(root, 5.0, compress=False)
    os.utime(audio_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # a copy that keeps times
    assert os.stat(audio_file).st_size == before.st_size
    stat_again = CodeCache(source, tmp_path / "stat", fingerprint="stat")
    hash_again = CodeCache(source, tmp_path / "hash", fingerprint="sha256")
    np.testing.assert_array_equal(_codes(stat_again, data), old)  # documented limit of "stat"
    assert stat_again.encoder_runs == 0
    assert not np.array_equal(_codes(hash_again, data), old) and hash_again.encoder_runs == 1


def test_every_input_file_is_named_by_the_loaders(tmp_path):
    data = _corpus(tmp_path / "data", 0.0)
    assert [len(s.source_files) for s in data.sets.values()] == [1, 1]
    assert {s.id_kind for s in data.sets.values()} == {"row"}
    with pytest.raises(SettingsError, match="must be one of stat, sha256"):
        CodeCache(None, fingerprint="mtime")  # type: ignore[arg-type]
