"""Zip-wrapped pickles: restricted unpickling, member rules, pad-last/trunc-10, error messages."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from toc.data.archives import load_feature, loads_ndarray, pad_last_trunc, read_zip_array
from toc.errors import DataError
from toc.testing.datafixtures import segment_values, write_feature_zip


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload_cls", [_SystemPayload, _EvalPayload])
def test_code_payload_is_refused_without_running(tmp_path, payload_cls):
    marker = tmp_path / "PWNED"
    path = write_feature_zip(tmp_path / "zips", "evil", payload_cls(marker))
    with pytest.raises(DataError) as exc:
        read_zip_array(path)
    assert "not allowed" in one_line(exc) and "evil.pkl" in str(exc.value)
    assert not marker.exists()


def test_payload_hidden_inside_an_array_pickle_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    # A list holding an array and a payload: the payload's global is refused before it can run.
    data = pickle.dumps([np.zeros(3), _SystemPayload(marker)])
    with pytest.raises(DataError, match="not allowed"):
        loads_ndarray(data, file="x.zip", key="x.pkl")
    assert not marker.exists()


def test_codecs_encode_is_only_latin1(tmp_path):
    # Protocol-2 array pickles need _codecs.encode(str, 'latin1'); any other use is refused.
    evil = (b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13"
            b"q\x02\x86q\x03Rq\x04.")
    with pytest.raises(DataError, match="refused pickle"):
        loads_ndarray(evil, file="x.zip", key="x.pkl")


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_array_pickles_of_every_protocol_load(protocol, dtype):
    array = (np.arange(24).reshape(2, 3, 4) * 0.5).astype(dtype)
    out = loads_ndarray(pickle.dumps(array, protocol=protocol), file="f", key="k")
    assert out.dtype == dtype and np.array_equal(out, array)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [([1.0, 2.0], "not a numpy array"), ({"a": 1}, "not a numpy array"),
     (np.array([1, "a"], dtype=object), "non-numeric dtype"),
     (np.float64(1.0), "not allowed")],
)
def test_non_array_pickles_are_data_errors(tmp_path, payload, needle):
    path = write_feature_zip(tmp_path, "clip", payload)
    with pytest.raises(DataError) as exc:
        read_zip_array(path)
    assert needle in one_line(exc)


def test_member_rules_extra_member_skipped_one_pkl_member(tmp_path):
    path = tmp_path / "clip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", b"ignored")
        archive.writestr("dir/second.pkl.bak", pickle.dumps(np.ones((10, 128))))
        archive.writestr("zz_no_pickle", b"garbage that is not a pickle")
    array, member = read_zip_array(path)
    assert member == "dir/second.pkl.bak" and np.all(array == 1.0)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("first.pkl", pickle.dumps(np.zeros((10, 128), np.float32)))
    with pytest.raises(DataError, match="several pickle members"):
        read_zip_array(path)


def test_zip_without_pickle_member(tmp_path):
    path = tmp_path / "clip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(DataError) as exc:
        read_zip_array(path)
    assert "no pickle member" in one_line(exc) and "clip.zip" in str(exc.value)


def test_missing_truncated_and_non_zip_files(tmp_path):
    with pytest.raises(DataError, match="missing feature file"):
        read_zip_array(tmp_path / "absent.zip")
    (tmp_path / "empty.zip").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_zip_array(tmp_path / "empty.zip")
    good = write_feature_zip(tmp_path, "good", np.zeros((10, 128)))
    (tmp_path / "cut.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError):
        read_zip_array(tmp_path / "cut.zip")
    truncated = write_feature_zip(tmp_path, "trunc", None,
                                  raw=pickle.dumps(np.zeros((10, 128)))[:50])
    with pytest.raises(DataError, match="unreadable pickle"):
        read_zip_array(truncated)


def test_pad_last_trunc_rule():
    short = segment_values(3, 8, (128,), np.float32)
    padded = pad_last_trunc(short)
    assert padded.shape == (10, 128)
    assert np.array_equal(padded[:8], short) and np.all(padded[8] == short[7])
    assert np.all(padded[9] == short[7])
    long = segment_values(1, 12, (7, 7, 512))
    assert np.array_equal(pad_last_trunc(long), long[:10])
    with pytest.raises(ValueError):
        pad_last_trunc(np.zeros((0, 128)))


def test_load_feature_casts_pads_and_checks(tmp_path):
    path = write_feature_zip(tmp_path, "a", segment_values(2, 7, (128,), np.float32))
    out = load_feature(path, (128,), pad=True)
    assert out.dtype == np.float64 and out.shape == (10, 128)
    assert out[9, 0] == np.float64(np.float32(2.06))
    with pytest.raises(DataError) as exc:
        load_feature(path, (128,), pad=False)  # video-style: exactly 10 segments
    assert "expected [10,128], got [7,128]" in one_line(exc) and "a.pkl" in str(exc.value)
    wrong = write_feature_zip(tmp_path, "w", np.zeros((10, 7, 7, 256)))
    with pytest.raises(DataError, match=r"expected \[10,7,7,512\], got \[10,7,7,256\]"):
        load_feature(wrong, (7, 7, 512), pad=False)
    empty = write_feature_zip(tmp_path, "e", np.zeros((0, 128)))
    with pytest.raises(DataError, match="T>=1"):
        load_feature(empty, (128,), pad=True)
    bad = np.zeros((10, 128))
    bad[3, 4] = np.nan
    bad[5, 0] = np.inf
    nan_path = write_feature_zip(tmp_path, "n", bad)
    with pytest.raises(DataError) as exc:
        load_feature(nan_path, (128,), pad=True)
    assert "2 NaN/Inf" in one_line(exc)
