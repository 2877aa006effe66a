"""Hostile-input fuzzing of every input kind of every `toc` command, for a fixed time budget.

A workspace of tiny, valid inputs is built once (every task layout, pretraining data, DCID /
H-DCID / bare-codebook checkpoints in .pt, .safetensors and .npy, a selection file, results
JSONL, a comparison plan, a data config, encode inputs, a one-step training run to resume).
Each attempt copies it, damages ONE input a command reads (or the run itself) and runs that
command in a forked child of this process (torch already imported, so an attempt costs the
command, not the interpreter start):

- random mutations: bit flips, truncation, emptying, inserted bytes;
- bombs: h5 datasets declaring 3e8 rows of unwritten chunks or gigabytes of compressed zeros,
  zip members inflating to 400 MB, pickles of millions of opcodes, deflated torch records,
  .npy headers declaring 10^12 elements, JSON / TOML nested 100k deep, 5000-digit integers;
- FIFOs and /dev/zero in place of a file, h5 external storage / external links / virtual
  datasets pointing at a FIFO;
- NaN / Inf / 1e200 in codebooks, encoder weights, features, labels, text features, JSON metrics;
- a flipped byte inside a torch tensor record (the zip CRC no longer matches);
- code payloads (pickle `__reduce__` running a shell command that creates a marker file) in
  checkpoints and feature zips, and `trust_checkpoint = true` in a plan pointing at one;
- faults: SIGTERM at a random moment, a file-size limit (RLIMIT_FSIZE) of a few KB.

An attempt's outcome is one of: ok (exit 0), clean error (exit 1 or 2, exactly one `Error:` line,
no traceback, not an "unexpected" error), crash (anything else, a signal included), hang (past
--timeout, killed), plus these violations counted separately: payload executed (marker created),
exit 0 on an input that must be refused (NaN / corrupt / bomb / FIFO in a file the command
reads), peak RSS above 1 GiB (the child's own ru_maxrss, torch included), a temporary file or a
partial / changed output left after a failure, an error line that does not name the damaged
file. Not part of CI:

    nice -n 10 .venv/bin/python benchmarks/fuzz.py --seconds 1500 --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli.main import cli  # noqa: E402
from toc.testing import datafixtures, hostile  # noqa: E402
from toc.testing.checkpoints import save_reference_checkpoint  # noqa: E402

RSS_LIMIT_KB = 1 << 20  # 1 GiB
ADDRESS_SPACE = 8 << 30  # keeps a real bomb (or a bad attack builder) from taking the machine down
MARKER = "PAYLOAD_RAN"

TINY_TRAIN = ["--levels", "1", "--audio-output-dim", "8", "--video-output-dim", "8", "--text-output-dim", "8",
              "--n-embeddings", "16", "--batch-size", "2", "--seed", "3", "--epochs", "1",
              "--diagnostics-clips", "2", "--recipe", "reference"]


# ---------------------------------------------------------------------------------- workspace


def build_workspace(base: Path) -> None:
    data = base / "data"
    for writer in (datafixtures.write_ave, datafixtures.write_avvp, datafixtures.write_ave_avvp,
                   datafixtures.write_ucf_vggsound, datafixtures.write_pretrain):
        writer(data)
    ck = base / "ckpt"
    ck.mkdir()
    save_reference_checkpoint(ck / "dcid.pt", "dcid-avt", text_dim=8)
    save_reference_checkpoint(ck / "hdcid.pt", "hdcid-avt", text_dim=8)
    torch.save({"codebook": torch.randn(16, 8, generator=torch.Generator().manual_seed(0))}, ck / "codebook.pt")
    np.save(ck / "codebook.npy", np.random.default_rng(0).normal(size=(16, 8)))
    from safetensors.torch import save_file

    save_file({"codebook": torch.randn(16, 8, generator=torch.Generator().manual_seed(1))}, str(ck / "codebook.safetensors"))
    enc = base / "enc"
    enc.mkdir()
    rng = np.random.default_rng(0)
    np.save(enc / "audio.npy", rng.normal(size=(3, 10, 128)))
    with h5py.File(enc / "video.h5", "w") as handle:
        handle.create_dataset("features", data=rng.normal(size=(2, 10, 7, 7, 512)).astype(np.float32))
    np.save(enc / "text.npy", rng.normal(size=(2, 10, 8)))
    for name, args in {
        "sel": ["select", str(ck / "dcid.pt"), "--channels", "4", "-o", str(base / "sel" / "dcid.json")],
    }.items():
        (base / name).mkdir(exist_ok=True)
        assert invoke_here(args) == 0, args
    results = base / "results"
    results.mkdir()
    lines = [hostile.result_line(seed=s, variant=v, selection=str(base / "sel" / "dcid.json") if v == "dcid+toc" else None,
                                 metrics={"accuracy": 40.0 + s + (3.0 if v == "dcid+toc" else 0.0)})
             for s in range(2) for v in ("dcid", "dcid+toc")]
    (results / "r.jsonl").write_text("\n".join(lines) + "\n")
    plans = base / "plans"
    plans.mkdir()
    (plans / "plan.toml").write_text(
        f'data_root = "{data}"\ntasks = ["ave"]\nvariants = ["dcid", "dcid+toc"]\nheads = ["prototype"]\n'
        f'directions = ["v2a"]\nseeds = [0]\n[checkpoints]\ndcid = "{ck / "dcid.pt"}"\n'
        f'[selection]\nchannels = 4\nmax_num = 1\nmin_num = 1\n'
    )
    (plans / "data.toml").write_text(f'data_root = "{data}"\n[ave]\nlabels = "{data / datafixtures.AVE_DIR / "labels.h5"}"\n')
    assert invoke_here(["train", "--data-root", str(data), "-o", str(base / "run"), *TINY_TRAIN, "--max-steps", "1"]) == 0


def invoke_here(args: list[str]) -> int:
    try:
        cli.main(args=args, prog_name="toc", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# ---------------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str]  # "{W}" is the attempt's workspace
    reads: dict[str, str]  # relative path (or glob) -> role
    outputs: list[str] = field(default_factory=list)  # relative paths that must not be left partial
    codebook_only: bool = False  # reads only the codebook of a checkpoint (inspect / score / select)


AVE = datafixtures.AVE_DIR
EVAL = ["--checkpoint", "{W}/ckpt/dcid.pt", "--data-root", "{W}/data", "--head", "prototype", "--direction", "v2a",
        "-o", "{W}/out/r.jsonl"]
COMMANDS = [
    Command("inspect", ["inspect", "{W}/ckpt/dcid.pt"], {"ckpt/dcid.pt": "ckpt"}, codebook_only=True),
    Command("inspect-hdcid", ["inspect", "{W}/ckpt/hdcid.pt", "--format", "json"], {"ckpt/hdcid.pt": "ckpt"}, codebook_only=True),
    Command("inspect-npy", ["inspect", "{W}/ckpt/codebook.npy"], {"ckpt/codebook.npy": "npy-codebook"}, codebook_only=True),
    Command("select-st", ["select", "{W}/ckpt/codebook.safetensors", "--channels", "4", "-o", "{W}/out/s.json"],
            {"ckpt/codebook.safetensors": "safetensors"}, ["out/s.json"], codebook_only=True),
    Command("select-pt", ["select", "{W}/ckpt/codebook.pt", "--channels", "4", "-o", "{W}/out/s.json"],
            {"ckpt/codebook.pt": "ckpt-codebook"}, ["out/s.json"], codebook_only=True),
    Command("score", ["score", "{W}/ckpt/hdcid.pt", "-o", "{W}/out/score.json"], {"ckpt/hdcid.pt": "ckpt"}, ["out/score.json"],
            codebook_only=True),
    Command("encode-audio", ["encode", "{W}/ckpt/dcid.pt", "--modality", "audio", "--input", "{W}/enc/audio.npy", "-o", "{W}/out/codes.h5"],
            {"ckpt/dcid.pt": "ckpt", "enc/audio.npy": "npy"}, ["out/codes.h5"]),
    Command("encode-video", ["encode", "{W}/ckpt/hdcid.pt", "--modality", "video", "--input", "{W}/enc/video.h5", "-o", "{W}/out/codes.h5"],
            {"ckpt/hdcid.pt": "ckpt", "enc/video.h5": "h5-features"}, ["out/codes.h5"]),
    Command("encode-text", ["encode", "{W}/ckpt/dcid.pt", "--modality", "text", "--input", "{W}/enc/text.npy", "-o", "{W}/out/codes.h5"],
            {"ckpt/dcid.pt": "ckpt", "enc/text.npy": "npy"}, ["out/codes.h5"]),
    Command("eval-ave", ["eval", "ave", *EVAL, "--cache-dir", "{W}/out/cache"],
            {"ckpt/dcid.pt": "ckpt", f"data/{AVE}/visual_feature.h5": "h5-features", f"data/{AVE}/audio_feature.h5": "h5-features",
             f"data/{AVE}/labels.h5": "h5-labels", f"data/{AVE}/train_order.h5": "h5-order", f"data/{AVE}/test_order.h5": "h5-order"},
            ["out/r.jsonl"]),
    Command("eval-ave-selection", ["eval", "ave", *EVAL, "--variant", "dcid+toc", "--selection", "{W}/sel/dcid.json"],
            {"sel/dcid.json": "selection", "ckpt/dcid.pt": "ckpt"}, ["out/r.jsonl"]),
    Command("eval-avvp", ["eval", "avvp", *EVAL],
            {"data/AVVP/data/AVVP_Categories.txt": "text-list", "data/AVVP/data/AVVP_eval_audio_checked_combined.csv": "csv",
             "data/AVVP/data/AVVP_eval_visual_checked_combined.csv": "csv", "data/AVVP/feature/audio/zip/[Iab]*.zip": "zip",
             "data/AVVP/feature/video/zip/[Ia]*.zip": "zip"}, ["out/r.jsonl"]),
    Command("eval-ave-avvp", ["eval", "ave-avvp", *EVAL],
            {"data/AVE_AVVP/ave_avvp_labels.h5": "h5-labels", "data/AVE_AVVP/ave_avvp_order.h5": "h5-order",
             "data/AVE_AVVP/AVE_AVVP_eval_audio_checked_combined.csv": "csv"}, ["out/r.jsonl"]),
    Command("eval-ucf", ["eval", "ucf-vggsound", *EVAL],
            {"data/feature_extractor/feature_extractor/ucf2vggsound.csv": "csv",
             "data/feature_extractor/feature_extractor/UCF101sameVGGSound.txt": "text-list",
             "data/UCF101/feature/video/zip/*.zip": "zip", "data/vggsound40k/feature/audio/zip/[ghi]*.zip": "zip"}, ["out/r.jsonl"]),
    Command("eval-config", ["eval", "ave", "--checkpoint", "{W}/ckpt/dcid.pt", "--config", "{W}/plans/data.toml", "--head",
                            "prototype", "--direction", "v2a", "-o", "{W}/out/r.jsonl"],
            {"plans/data.toml": "toml"}, ["out/r.jsonl"]),
    Command("compare", ["compare", "--config", "{W}/plans/plan.toml", "-o", "{W}/out/cmp", "--no-charts"],
            {"plans/plan.toml": "toml-plan", "ckpt/dcid.pt": "ckpt", f"data/{AVE}/labels.h5": "h5-labels"}, ["out/cmp"]),
    Command("report", ["report", "{W}/results/r.jsonl", "-o", "{W}/out/rep"],
            {"results/r.jsonl": "jsonl", "sel/dcid.json": "selection"}, ["out/rep"]),
    Command("train", ["train", "--data-root", "{W}/data", "-o", "{W}/out/run", *TINY_TRAIN, "--max-steps", "1"],
            {"data/feature_extractor/feature_extractor/vggsound-avel40k.csv": "csv",
             "data/vggsound40k/data/text_features.h5": "h5-text", "data/vggsound40k/feature/video/zip/*.zip": "zip"}, []),
    Command("resume", ["train", "--data-root", "{W}/data", "--resume", "{W}/run", "--max-steps", "2"],
            {"run/last.pt": "ckpt-run", "run/metrics.jsonl": "metrics"}, []),
]


# ---------------------------------------------------------------------------------- attacks


def _payload_pickle(marker: Path) -> bytes:
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Payload(), protocol=2)


def _edit_checkpoint(path: Path, edit) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    encoder = state["Encoder_parameters"] if isinstance(state, dict) and "Encoder_parameters" in state else state
    edit(encoder)
    torch.save(state, path)


def _poison(tensor: torch.Tensor, value: float) -> torch.Tensor:
    out = tensor.clone().double() if value > 3e38 else tensor.clone()
    out.view(-1)[0] = value
    return out


def attack(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Damage `target` by `kind`; returns whether the command must then refuse (never exit 0)."""
    if kind not in ATTACKS:
        raise ValueError(kind)
    return ATTACKS[kind](kind, target, role, work, rng)


def _damage_file(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on any file: its bytes, or what stands at its path."""
    if kind == "mutate":
        data = bytearray(target.read_bytes())
        mode = rng.choice(["flip", "truncate", "insert"])
        if mode == "flip" and data:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif mode == "truncate":
            data = data[: rng.randrange(len(data) + 1)]
        else:
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        target.write_bytes(bytes(data))
        return False
    if kind == "empty":
        target.write_bytes(b"")
        return True
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "devzero":
        target.symlink_to("/dev/zero")
    else:  # directory
        target.mkdir()
    return True


def _damage_checkpoint(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on a torch checkpoint: its records, its values, code in its pickle."""
    if kind == "crcflip":
        hostile.flip_record_byte(target, target, offset=8)
    elif kind in ("nan-codebook", "inf-codebook", "huge-codebook"):
        value = {"nan-codebook": float("nan"), "inf-codebook": float("inf"), "huge-codebook": 1e200}[kind]

        def edit(encoder):
            key = "Cross_quantizer.embedding" if "Cross_quantizer.embedding" in encoder else next(iter(encoder))
            encoder[key] = _poison(encoder[key], value)
        _edit_checkpoint(target, edit)
    elif kind == "nan-weight":
        def edit(encoder):
            keys = [k for k in encoder if k.startswith(("audio_self_att", "video_self_att")) and encoder[k].is_floating_point()]
            key = rng.choice(keys)
            encoder[key] = _poison(encoder[key], float("nan"))
        _edit_checkpoint(target, edit)
    elif kind == "deflated-records":
        state = torch.load(target, map_location="cpu", weights_only=True)
        state = state if isinstance(state, dict) else {"codebook": state}
        state = {**state, "padding": torch.zeros(40_000_000)}  # 160 MB of zeros, about 160 KB deflated
        hostile.torch_with_deflated_records(target, state)
    elif kind == "payload-pickle":
        target.write_bytes(_payload_pickle(work / MARKER))
    else:  # payload-torch
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("archive/data.pkl", _payload_pickle(work / MARKER))
            archive.writestr("archive/version", "3\n")
        target.write_bytes(buffer.getvalue())
    return True


def _damage_array_file(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on .npy and .safetensors files: headers that lie, pickled objects."""
    if kind == "npy-lying":
        hostile.npy_lying_header(target, (1_000_000_000, 10, 128))
    elif kind == "npy-object":
        np.save(target, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:  # safetensors-absurd
        header = json.dumps({"codebook": {"dtype": "F32", "shape": [1 << 40, 1 << 20], "data_offsets": [0, 64]}}).encode()
        target.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    return True


def _h5_shape(path: Path, key: str) -> tuple[int, ...]:
    with h5py.File(path, "r") as handle:
        return tuple(handle[key].shape)


def _damage_h5(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on an h5 file's main dataset: declared sizes, stored zeros, storage elsewhere,
    non-finite values, a scalar."""
    key = _h5_key(target)
    if kind == "h5-unwritten":
        shape = _h5_shape(target, key)
        hostile.h5_unwritten(target, key, (300_000_000, *shape[1:]), dtype="float64" if len(shape) > 1 else "int64",
                             chunks=(1024, *shape[1:]) if len(shape) > 1 else (4096,))
        return True
    if kind == "h5-zeros-bomb":
        # 300 MB of zeros, written and deflated to about 300 KB: data the file really stores.
        shape = _h5_shape(target, key)
        rows = max(1, (300 << 20) // (8 * int(np.prod(shape[1:], dtype=np.int64))))
        with h5py.File(target, "w") as handle:
            dataset = handle.create_dataset(key, shape=(rows, *shape[1:]), dtype="float64", compression="gzip",
                                            compression_opts=1, chunks=(max(1, rows // 64), *shape[1:]))
            block = np.zeros((max(1, rows // 64), *shape[1:]))
            for start in range(0, rows, len(block)):
                dataset[start : start + len(block)] = block[: rows - start]
        return role != "h5-features"  # lazily read features may legitimately be large
    if kind in ("h5-external-fifo", "h5-external-link", "h5-virtual"):
        shape = _h5_shape(target, key)
        pipe = _pipe(work)
        target.unlink()
        if kind == "h5-external-fifo":
            hostile.h5_external(target, key, shape, pipe)
        elif kind == "h5-external-link":
            hostile.h5_external_link(target, key, pipe)
        else:
            hostile.h5_virtual(target, key, shape, pipe)
        return True
    if kind == "h5-nan":
        with h5py.File(target, "a") as handle:
            data = np.asarray(handle[key][()])
            if data.dtype.kind != "f":
                return False
            data.reshape(-1)[rng.randrange(data.size)] = rng.choice([np.nan, np.inf, -np.inf])
            del handle[key]
            handle.create_dataset(key, data=data)
        return True
    # h5-scalar
    target.unlink()
    hostile.h5_scalar(target, key)
    return True


def _damage_zip(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on a feature zip: bombs, several members, code in its pickle, NaN, too many steps."""
    if kind == "zip-bomb":
        hostile.zip_bomb(target, target.stem + ".pkl", 400_000_000)
    elif kind == "zip-many":
        hostile.zip_many_pickles(target, [np.zeros((10, 128))] * 4)
    elif kind == "zip-list-bomb":
        hostile.pickle_list_bomb(target, 3_000_000)
    elif kind == "zip-payload":
        import zipfile

        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr(target.stem + ".pkl", _payload_pickle(work / MARKER))
    else:  # zip-nan, zip-long
        from toc.data.archives import pkl_zip_bytes, read_zip_array

        array, _ = read_zip_array(target)
        if kind == "zip-nan":
            array = np.array(array, dtype=np.float64)
            array.reshape(-1)[rng.randrange(array.size)] = np.nan
        else:
            steps = 100_000 if array.ndim == 2 else 400  # audio: 51 MB of zeros; video: past the 300-step bound
            array = np.zeros((steps, *array.shape[1:]), dtype=np.float32)
        target.write_bytes(pkl_zip_bytes(target.stem, array))
    return True


def _damage_text(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on text files (CSV, lists, training metrics): bad encodings, NUL, huge fields."""
    if kind == "text-nonutf8":
        target.write_bytes(target.read_bytes()[:20] + b"\xff\xfe\x80" + target.read_bytes()[20:])
    elif kind == "text-nul":
        target.write_bytes(target.read_bytes().replace(b"\n", b"\0\n", 1))
    elif kind == "text-huge-field":
        target.write_bytes(target.read_bytes() + b"x" * 300_000 + b"\n")
    else:  # metrics-garbage
        with open(target, "a") as handle:
            handle.write('[1, 2]\n{"kind": "step", "total_step": "x"}\n')
    return True


def _damage_json(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on a selection (JSON) or results (JSONL) file: nesting, NaN, huge integers, a
    selection of another checkpoint, names a report must escape, a FIFO named inside."""
    if kind == "json-deep":
        target.write_text(hostile.deep_json(100_000))
    elif kind == "json-nan":
        text = target.read_text()
        target.write_text(text.replace('"accuracy": 40.0', '"accuracy": NaN', 1) if role == "jsonl"
                          else text.replace('"scores": [', '"scores": [NaN, ', 1))
    elif kind == "json-bigint":
        text = target.read_text()
        target.write_text(text.replace('"seed": 0', '"seed": ' + "9" * 5000, 1) if role == "jsonl"
                          else text.replace('"level": 0', '"level": ' + "9" * 5000, 1))
    elif kind in ("json-other-checkpoint", "json-shape"):
        document = json.loads(target.read_text())
        if kind == "json-other-checkpoint":
            document["checkpoint"]["sha256"] = rng.choice(["", "0" * 64])
        else:
            document["levels"][0]["codebook_shape"] = [17, 16]
        target.write_text(json.dumps(document))
    elif kind == "jsonl-bad-name":
        lines = target.read_text().splitlines()
        line = json.loads(lines[0])
        line[rng.choice(["task", "variant"])] = rng.choice(["a|b", "x\ny", "<script>", "ave" * 40])
        target.write_text("\n".join([json.dumps(line), *lines[1:]]) + "\n")
    else:  # jsonl-selection-fifo
        lines = target.read_text().splitlines()
        pipe = _pipe(work)
        line = json.loads(lines[-1])
        line["selection"] = rng.choice([str(pipe), "/dev/zero"])
        target.write_text("\n".join([*lines[:-1], json.dumps(line)]) + "\n")
    return True


def _damage_toml(kind: str, target: Path, role: str, work: Path, rng: random.Random) -> bool:
    """Attacks on a plan or data config: nesting, a trust flag pointing at code, paths that
    cannot be read."""
    if kind == "toml-deep":
        target.write_text(hostile.deep_toml(50_000))
    elif kind == "toml-trust":
        payload = work / "payload.pt"
        payload.write_bytes(_payload_pickle(work / MARKER))
        text = target.read_text().replace(str(work / "ckpt" / "dcid.pt"), str(payload))
        target.write_text("trust_checkpoint = true\n" + text)
    elif kind == "toml-nouser":
        target.write_text(target.read_text().replace(f'data_root = "{work / "data"}"', 'data_root = "~nosuchuser_zz/data"'))
    else:  # toml-fifo-path
        pipe = _pipe(work)
        text = target.read_text()
        target.write_text(text.replace(str(work / "ckpt" / "dcid.pt"), str(pipe)).replace(
            str(work / "data" / AVE / "labels.h5"), str(pipe)))
    return True


def _pipe(work: Path) -> Path:
    """The attempt's FIFO (one per workspace copy; nothing ever writes to it)."""
    pipe = work / "pipe"
    if not pipe.exists():
        os.mkfifo(pipe)
    return pipe


ATTACKS = {
    kind: damage
    for damage, kinds in (
        (_damage_file, ("mutate", "empty", "fifo", "devzero", "directory")),
        (_damage_checkpoint, ("crcflip", "nan-codebook", "inf-codebook", "huge-codebook", "nan-weight",
                              "deflated-records", "payload-pickle", "payload-torch")),
        (_damage_array_file, ("npy-lying", "npy-object", "safetensors-absurd")),
        (_damage_h5, ("h5-unwritten", "h5-zeros-bomb", "h5-external-fifo", "h5-external-link", "h5-virtual",
                      "h5-nan", "h5-scalar")),
        (_damage_zip, ("zip-bomb", "zip-many", "zip-list-bomb", "zip-payload", "zip-nan", "zip-long")),
        (_damage_text, ("text-nonutf8", "text-nul", "text-huge-field", "metrics-garbage")),
        (_damage_json, ("json-deep", "json-nan", "json-bigint", "json-other-checkpoint", "json-shape",
                        "jsonl-bad-name", "jsonl-selection-fifo")),
        (_damage_toml, ("toml-deep", "toml-trust", "toml-nouser", "toml-fifo-path")),
    )
    for kind in kinds
}


def _h5_key(path: Path) -> str:
    with h5py.File(path, "r") as handle:
        names: list[str] = []
        handle.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return "features" if "features" in names else names[0]


KINDS_BY_ROLE = {
    "ckpt": ["mutate", "empty", "fifo", "devzero", "directory", "crcflip", "nan-codebook", "inf-codebook", "huge-codebook",
             "nan-weight", "deflated-records", "payload-pickle", "payload-torch"],
    "ckpt-codebook": ["mutate", "empty", "fifo", "crcflip", "nan-codebook", "huge-codebook", "deflated-records",
                      "payload-pickle"],
    "ckpt-run": ["mutate", "empty", "fifo", "crcflip", "deflated-records", "payload-pickle"],
    "npy-codebook": ["mutate", "empty", "fifo", "npy-lying", "npy-object"],
    "npy": ["mutate", "empty", "fifo", "devzero", "npy-lying", "npy-object"],
    "safetensors": ["mutate", "empty", "fifo", "safetensors-absurd"],
    "h5-features": ["mutate", "empty", "fifo", "h5-unwritten", "h5-zeros-bomb", "h5-external-fifo", "h5-external-link",
                    "h5-virtual", "h5-nan", "h5-scalar"],
    "h5-labels": ["mutate", "empty", "fifo", "h5-unwritten", "h5-zeros-bomb", "h5-external-fifo", "h5-virtual", "h5-nan",
                  "h5-scalar"],
    "h5-order": ["mutate", "empty", "fifo", "h5-unwritten", "h5-external-fifo", "h5-scalar"],
    "h5-text": ["mutate", "empty", "fifo", "h5-unwritten", "h5-zeros-bomb", "h5-external-fifo", "h5-nan", "h5-scalar"],
    "zip": ["mutate", "empty", "fifo", "devzero", "zip-bomb", "zip-many", "zip-list-bomb", "zip-payload", "zip-nan",
            "zip-long"],
    "csv": ["mutate", "empty", "fifo", "text-nonutf8", "text-nul", "text-huge-field"],
    "text-list": ["mutate", "empty", "fifo", "text-nonutf8"],
    "toml": ["mutate", "fifo", "toml-deep", "text-nonutf8", "toml-nouser", "toml-fifo-path"],
    "toml-plan": ["mutate", "fifo", "toml-deep", "text-nonutf8", "toml-trust", "toml-nouser", "toml-fifo-path"],
    "selection": ["mutate", "empty", "fifo", "devzero", "json-deep", "json-nan", "json-bigint", "json-other-checkpoint",
                  "json-shape"],
    "jsonl": ["mutate", "empty", "fifo", "devzero", "json-deep", "json-nan", "json-bigint", "jsonl-bad-name",
              "jsonl-selection-fifo", "text-nonutf8"],
    "metrics": ["mutate", "metrics-garbage"],
}
FAULTS = ["sigterm", "fsize"]


# ---------------------------------------------------------------------------------- running


@dataclass
class Outcome:
    code: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    rss_kb: int
    seconds: float


def run_child(args: list[str], work: Path, timeout: float, *, fsize: int | None = None,
              sigterm_after: float | None = None) -> Outcome:
    out_path, err_path = work / ".fuzz-stdout", work / ".fuzz-stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: run the command as `toc` would, then leave without cleanup
        code = 99
        try:
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
            os.chdir(work)
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)
            try:
                cli.main(args=args, prog_name="toc", standalone_mode=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 98
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    code, rss = None, 0
    sent = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            rss = usage.ru_maxrss
            code = os.waitstatus_to_exitcode(status)
            break
        elapsed = time.monotonic() - start
        if sigterm_after is not None and not sent and elapsed > sigterm_after:
            os.kill(pid, signal.SIGTERM)
            sent = True
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            rss, code = usage.ru_maxrss, None
            break
        time.sleep(0.02)
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return Outcome(code, read(out_path), read(err_path), rss, time.monotonic() - start)


def snapshot(paths: list[Path]) -> dict[str, bytes | None]:
    state = {}
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file():
                    state[str(item)] = item.read_bytes()
        elif path.is_file():
            state[str(path)] = path.read_bytes()
    return state


def temporaries(work: Path) -> list[Path]:
    found = []
    for item in work.rglob(".*"):
        if item.name.endswith(".tmp") and not item.name.startswith(".fuzz-"):
            found.append(item)
    return found


def classify(outcome: Outcome) -> str:
    if outcome.code is None:
        return "hang"
    lines = [line for line in outcome.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    if outcome.code == 0:
        return "ok"
    if outcome.code in (1, 2, 128 + signal.SIGTERM) and len(errors) == 1 and "Traceback" not in outcome.stderr \
            and "unexpected " not in errors[0] and lines[-1] == errors[0]:
        return "error"
    return "crash"


def role_of(command_name: str, target: str | None, kind: str) -> str:
    """The input kind an attempt damaged (the `reads` role of its target), or the fault it injected."""
    if target is None:
        return f"fault: {kind}"
    command = next(c for c in COMMANDS if c.name == command_name)
    for pattern, role in command.reads.items():
        if fnmatch.fnmatchcase(target, pattern):
            return role
    return "?"


SUMMARY_COLUMNS = ["attempts", "ok", "error", "crash", "hang", "payload_executed", "exit0_on_bad_input",
                   "rss_max_mb", "temporary_left", "output_changed_on_failure", "error_names_no_file"]


def summary_table(log_path: Path) -> str:
    """A markdown table of a --log: one row per input kind (plus the injected faults) and a total."""
    rows: dict[str, Counter] = {}
    for text in log_path.read_text().splitlines():
        entry = json.loads(text)
        role = entry.get("role") or role_of(entry["command"], entry["target"], entry["kind"])
        for key in (role, "all"):
            row = rows.setdefault(key, Counter())
            row["attempts"] += 1
            row[entry["verdict"]] += 1
            row["rss_max_mb"] = max(row["rss_max_mb"], round(entry["rss_kb"] / 1024))
            for problem in entry["problems"]:
                row[problem] += 1
    order = sorted((k for k in rows if k != "all"), key=lambda k: (k.startswith("fault"), k)) + ["all"]
    lines = ["| input kind | " + " | ".join(SUMMARY_COLUMNS) + " |", "|---" * (len(SUMMARY_COLUMNS) + 1) + "|"]
    for key in order:
        lines.append(f"| {key} | " + " | ".join(str(rows[key][c]) for c in SUMMARY_COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1500.0, help="time budget")
    parser.add_argument("--attempts", type=int, default=1_000_000, help="stop after this many attempts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="an attempt running longer is a hang")
    parser.add_argument("--log", type=Path, default=None, help="write one JSON line per attempt here")
    parser.add_argument("--summarise", type=Path, default=None, metavar="LOG",
                        help="print the per-input-kind table of a finished run's --log, then exit")
    args = parser.parse_args()
    if args.summarise:
        print(summary_table(args.summarise))
        return 0
    torch.set_num_threads(1)
    # The fuzzer and every child: a runaway allocation fails here instead of on a shared machine.
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="toc-fuzz-"))
    counts: Counter = Counter()
    failures: list[str] = []
    log = open(args.log, "w") if args.log else None
    try:
        workspace = base / "ws"
        workspace.mkdir()
        build_workspace(workspace)
        deadline = time.monotonic() + args.seconds
        while counts["attempts"] < args.attempts and time.monotonic() < deadline:
            counts["attempts"] += 1
            work = base / f"a{counts['attempts']}"
            _copy_workspace(workspace, work)
            command = rng.choice(COMMANDS)
            (work / "out").mkdir(exist_ok=True)
            try:
                damage = _damage(command, work, rng)
            except AttackNotApplicable as exc:
                counts["attack_not_applicable"] += 1
                failures.append(str(exc))
                shutil.rmtree(work, ignore_errors=True)
                continue
            outputs = [work / p for p in command.outputs]
            before = snapshot(outputs)
            argv = [a.replace("{W}", str(work)) for a in command.args]
            outcome = run_child(argv, work, args.timeout, fsize=damage.fsize, sigterm_after=damage.sigterm_after)
            verdict = classify(outcome)
            counts[verdict] += 1
            counts["max_rss_kb"] = max(counts["max_rss_kb"], outcome.rss_kb)
            problems = _problems(damage, outcome, verdict, work, outputs, before)
            for problem in problems:
                counts[problem] += 1
            target = damage.target
            if verdict in ("crash", "hang") or problems:
                tail = outcome.stderr.strip().splitlines()[-3:]
                failures.append(f"{command.name} {damage.kind} {target.name if target else ''}: {verdict} {problems} "
                                f"code={outcome.code} :: {' | '.join(tail)[:400]}")
            if log:
                log.write(json.dumps({"attempt": counts["attempts"], "command": command.name, "kind": damage.kind,
                                      "role": role_of(command.name, str(target.relative_to(work)) if target else None, damage.kind),
                                      "target": str(target.relative_to(work)) if target else None, "verdict": verdict,
                                      "code": outcome.code, "rss_kb": outcome.rss_kb, "seconds": round(outcome.seconds, 2),
                                      "problems": problems, "stderr_tail": outcome.stderr.strip().splitlines()[-1:]}) + "\n")
                log.flush()
            shutil.rmtree(work, ignore_errors=True)
            if counts["attempts"] % 25 == 0:
                print(f"... {dict(counts)}", file=sys.stderr, flush=True)
    finally:
        if log:
            log.close()
        shutil.rmtree(base, ignore_errors=True)
    for line in failures[:200]:
        print("FAIL", line, file=sys.stderr)
    print(json.dumps(dict(counts), sort_keys=True))
    bad = sum(counts[k] for k in ("crash", "hang", "payload_executed", "exit0_on_bad_input", "rss_over_1GiB",
                                  "temporary_left", "output_changed_on_failure"))
    return 1 if bad else 0


def _copy_workspace(workspace: Path, work: Path) -> None:
    shutil.copytree(workspace, work, symlinks=True)
    # Every absolute path of the workspace now names the copy.
    for text_file in [*work.glob("plans/*.toml"), *work.glob("results/*.jsonl")]:
        text_file.write_text(text_file.read_text().replace(str(workspace), str(work)))


@dataclass(frozen=True)
class Damage:
    """What one attempt did to its workspace copy: an attack on one input, or a fault."""

    kind: str
    target: Path | None = None  # the damaged input (None for a fault)
    must_fail: bool = False  # the command must refuse (never exit 0)
    fsize: int | None = None  # fault: the file-size limit in bytes
    sigterm_after: float | None = None  # fault: SIGTERM after this many seconds

    @property
    def fault(self) -> bool:
        return self.target is None


class AttackNotApplicable(Exception):
    """An attack that does not apply to the file drawn (say, a NaN in an integer dataset)."""


def _damage(command: Command, work: Path, rng: random.Random) -> Damage:
    """Draw a fault (12 %) or an attack on one input `command` reads, and apply it."""
    if rng.random() < 0.12:
        kind = rng.choice(FAULTS)
        if kind == "fsize":
            return Damage(kind, fsize=rng.choice([1024, 8192, 65536]))
        return Damage(kind, sigterm_after=rng.uniform(0.2, 4.0))
    pattern, role = rng.choice(list(command.reads.items()))
    candidates = sorted(work.glob(pattern))
    target = rng.choice(candidates)
    kind = rng.choice(KINDS_BY_ROLE[role])
    try:
        must_fail = attack(kind, target, role, work, rng)
    except Exception as exc:
        raise AttackNotApplicable(
            f"attack {kind} on {target.name} failed to build: {type(exc).__name__}: {exc}"
        ) from exc
    if command.codebook_only and kind == "nan-weight":
        must_fail = False  # inspect / score / select never read the encoder weights
    if command.name == "train" and role == "zip" and kind not in ("fifo", "devzero", "empty"):
        must_fail = False  # a one-step run reads only the clips of its first batch
    if command.name == "report" and kind in ("json-other-checkpoint", "json-shape"):
        must_fail = False  # the report only draws a selection; it applies none
    return Damage(kind, target, must_fail)


# Attacks whose error line may rightly name another file than the damaged one (the file it points at).
NAMES_ANOTHER_FILE = ("toml-trust", "toml-nouser", "toml-fifo-path", "jsonl-selection-fifo",
                      "json-other-checkpoint", "json-shape")


def _problems(damage: Damage, outcome: Outcome, verdict: str, work: Path, outputs: list[Path],
              before: dict[str, bytes | None]) -> list[str]:
    """The violations of one attempt, beyond its verdict."""
    problems = []
    if (work / MARKER).exists():
        problems.append("payload_executed")
    if verdict == "ok" and damage.must_fail:
        problems.append("exit0_on_bad_input")
    if outcome.rss_kb > RSS_LIMIT_KB:
        problems.append("rss_over_1GiB")
    if temporaries(work):
        problems.append("temporary_left")
    if verdict != "ok" and snapshot(outputs) != before:
        problems.append("output_changed_on_failure")
    if verdict == "error" and not damage.fault:
        line = [x for x in outcome.stderr.splitlines() if x.startswith("Error:")][0]
        target = damage.target
        if target.name not in line and target.parent.name not in line and damage.kind not in NAMES_ANOTHER_FILE:
            problems.append("error_names_no_file")
    return problems


if __name__ == "__main__":
    sys.exit(main())
