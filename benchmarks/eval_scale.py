"""Benchmark: model selection at the real AVE size, grouped linear heads vs the per-head autograd loop.

Run: nice -n 10 .venv/bin/python benchmarks/eval_scale.py [--clips 4143] [--epochs 50]
     [--seeds 0,1,2] [--families dcid,hdcid] [--channels 224] [--legacy-threads 1] [--no-legacy]
     [--single] [--workdir DIR]

Writes benchmarks/results/eval_scale.md. Everything is generated on the fly in a temporary
folder (removed at the end): an AVE-layout set of `--clips` clips (video float32
[N,10,7,7,512] written in chunks, audio [N,10,128], labels, the 3339/402/402 split scaled to N)
with a planted class signal, and published-size checkpoints of both families with random
weights (400 x 256 codebooks spread with N(0,1) draws as toc/testing/checkpoints.py does, so codes
vary; 2048-wide video branch; float64 like the published files).

Per family (dcid: variants dcid, dcid+toc; hdcid: hdcid, hdcid+toc), each in its own process so
that peak RSS is that run's own, as `toc eval` would run it:
  grouped  - load, encode both sets (timed per modality), then run_evaluation with the new
             grouped heads: both directions, linear + prototype, every seed. Encoding included.
  autograd - the same evaluation with the per-head nn.Module loop (`--head-engine autograd`,
             `--head-threads` as given), reading the codes the grouped run cached; its total
             adds the grouped run's encoding time (the encoding code is the same).
  single   - (with --single) the grouped code one head at a time, to show the numbers are the
             same bit for bit and what the lockstep grouping itself adds.
Records are compared field by field: grouped vs single must be identical; grouped vs autograd
differ only by float64 rounding in training, so the metrics are expected (not guaranteed) equal.

--video-sample FAMILY:M (e.g. hdcid:256) encodes only the first M video clips of that family
through the checkpoint (timed; the full-set time is extrapolated from that throughput) and repeats
their codes over the set, for machines where encoding the whole set would take hours (H-DCID's
video branch costs about 14 GFLOP per clip). The heads then train on realistic code statistics;
the report says which numbers are extrapolated. Every run also records CPU seconds, which a
shared machine distorts less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CLASSES = 28
AVE_SPLIT = (3339, 402, 402)  # the real AVE train / val / test sizes (4,143 clips)
FAMILY_VARIANTS = {"dcid": ("dcid", "dcid+toc"), "hdcid": ("hdcid", "hdcid+toc")}


# ---------------------------------------------------------------------- data and checkpoints


def write_ave(root: Path, n: int, seed: int = 0, chunk: int = 64) -> dict:
    """An AVE-layout set under root, video written chunk by chunk (never all in memory)."""
    import h5py

    data = root / "AVE-ECCV18-master" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, N_CLASSES, n)
    audio_means = rng.normal(size=(N_CLASSES, 128)).astype(np.float32)
    video_means = rng.normal(size=(N_CLASSES, 512)).astype(np.float32)
    labels = np.zeros((n, 10, N_CLASSES + 1), np.float32)
    labels[np.arange(n), :, classes] = 1.0
    order = rng.permutation(n)
    n_train = int(round(n * AVE_SPLIT[0] / sum(AVE_SPLIT)))
    n_val = (n - n_train) // 2
    start = time.perf_counter()
    with h5py.File(data / "labels.h5", "w") as handle:
        handle.create_dataset("avadataset", data=labels)
    for name, rows in (("train", order[:n_train]), ("val", order[n_train : n_train + n_val]), ("test", order[n_train + n_val :])):
        with h5py.File(data / f"{name}_order.h5", "w") as handle:
            handle.create_dataset("order", data=np.sort(rows).astype(np.int64))
    with h5py.File(data / "audio_feature.h5", "w") as handle:
        audio = rng.normal(size=(n, 10, 128)).astype(np.float32) + 1.5 * audio_means[classes][:, None, :]
        handle.create_dataset("avadataset", data=audio)
    with h5py.File(data / "visual_feature.h5", "w") as handle:
        dataset = handle.create_dataset("avadataset", shape=(n, 10, 7, 7, 512), dtype=np.float32)
        for first in range(0, n, chunk):
            rows = slice(first, min(n, first + chunk))
            block = rng.standard_normal(size=(rows.stop - rows.start, 10, 7, 7, 512), dtype=np.float32)
            block += video_means[classes[rows]][:, None, None, None, :]
            np.maximum(block, 0.0, out=block)  # pool5 features are ReLU outputs
            dataset[rows] = block
    size = sum(f.stat().st_size for f in data.iterdir())
    return {"seconds": time.perf_counter() - start, "bytes": size, "split": [n_train, n_val, n - n_train - n_val]}


def write_checkpoint(path: Path, family: str, seed: int) -> dict:
    import torch

    from hdcid.models import CmgEncoder, EncoderSizes

    torch.manual_seed(seed)
    encoder = CmgEncoder(EncoderSizes(family=family)).double()
    with torch.no_grad():
        embedding = encoder.Cross_quantizer.embedding
        embedding.copy_(torch.randn(embedding.shape, dtype=embedding.dtype))
    state = encoder.state_dict()
    torch.save({"Encoder_parameters": state, "epoch": 2, "total_step": 10}, path)
    n_params = sum(t.numel() for t in state.values())
    return {"parameters": n_params, "bytes": path.stat().st_size}


# ---------------------------------------------------------------------- one measured run (child)


def peak_rss_mb() -> float:
    """Peak RSS of this process or of its largest finished child (a forked worker shares pages)."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024.0


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the grouped heads' workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class SampledVideoSource:
    """A code source that encodes the first `sample` clips of the video set and repeats their codes.

    Only for benchmarking on machines too slow to encode a whole set; the encoded part is real.
    """

    def __init__(self, inner, sample: int):
        self.inner, self.sample = inner, sample
        self.sha256, self.levels, self.epoch, self.family = inner.sha256, inner.levels, inner.epoch, inner.family
        self.sampled: dict[str, dict] = {}

    def codebooks(self, dtype):
        return self.inner.codebooks(dtype)

    def encode(self, feature_set, dtype, *, dropout_seed, batch_size, progress):
        n = len(feature_set)
        if feature_set.modality != "video" or n <= self.sample:
            return self.inner.encode(feature_set, dtype, dropout_seed=dropout_seed, batch_size=batch_size, progress=progress)
        from dataclasses import replace

        head = replace(feature_set, ids=list(feature_set.ids)[: self.sample], labels=feature_set.labels[: self.sample])
        start, cpu = time.perf_counter(), cpu_seconds()
        codes = self.inner.encode(head, dtype, dropout_seed=dropout_seed, batch_size=batch_size, progress=progress)
        self.sampled[feature_set.name] = {"clips": self.sample, "seconds": time.perf_counter() - start,
                                          "cpu_seconds": cpu_seconds() - cpu}
        repeat = np.arange(n) % self.sample
        return [c[repeat] for c in codes]


def child(args) -> None:
    import torch

    from toc.codebook.checkpoint import load_checkpoint
    from toc.codebook.selection import TocSettings, selection_for
    from toc.eval.cache import CheckpointCodeSource, CodeCache
    from toc.eval.loop import EvalRequest, run_evaluation
    from toc.eval.tasks import load_task

    out: dict = {"engine": args.child, "family": args.family, "torch_threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint)
    data = load_task("ave", data_root=args.data_root)
    out["load_seconds"] = time.perf_counter() - t0
    out["rss_after_load_mb"] = peak_rss_mb()
    source = CheckpointCodeSource(checkpoint)
    sample = dict(item.split(":") for item in args.video_sample.split(",") if item).get(args.family)
    if sample is not None:
        source = SampledVideoSource(source, int(sample))
    cache = CodeCache(source, args.cache_dir, batch_size=64)
    encode = {}
    for name in ("ave/video", "ave/audio"):
        start, cpu = time.perf_counter(), cpu_seconds()
        encoded = cache.get("ave", data.sets[name], "float32")
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        used = [int(np.unique(c).size) for c in encoded.codes]
        per_batch = [float(np.mean([np.unique(c[i : i + 80]).size for i in range(0, len(c), 80)])) for c in encoded.codes]
        encode[name] = {"seconds": seconds, "cpu_seconds": cpu, "clips": len(encoded), "codes_used": used,
                        "codes_per_batch80": per_batch}
        sampled = getattr(source, "sampled", {}).get(name)
        if sampled is not None:
            # The set's time at the measured throughput; the tiling itself is not counted.
            scale = len(encoded) / sampled["clips"]
            encode[name].update(sampled_clips=sampled["clips"], seconds=sampled["seconds"] * scale,
                                cpu_seconds=sampled["cpu_seconds"] * scale, extrapolated=True)
    out["encode"] = encode
    out["encoder_runs"], out["disk_hits"] = cache.encoder_runs, cache.disk_hits
    out["rss_after_encode_mb"] = peak_rss_mb()
    request = EvalRequest(
        variants=FAMILY_VARIANTS[args.family], directions=("v2a", "a2v"), heads=("linear", "prototype"),
        seeds=tuple(int(s) for s in args.seeds.split(",")), epochs=args.epochs,
        selection=selection_for(checkpoint, TocSettings(channels=args.channels, max_num=1, min_num=1)),
        head_engine=args.child,
        head_threads=args.legacy_threads if args.child == "autograd" else None,
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    records = [r.to_json() for r in run_evaluation(data, cache, request)]
    out["heads_seconds"], out["heads_cpu_seconds"] = time.perf_counter() - start, cpu_seconds() - cpu
    # With a sampled video set, the total counts the set's extrapolated encoding time instead of
    # the time spent encoding the sample.
    wall = time.perf_counter() - t0
    for e in encode.values():
        if e.get("extrapolated"):
            wall += e["seconds"] * (1 - e["sampled_clips"] / e["clips"])
    out["total_seconds"] = wall
    measured = sum(e["seconds"] for e in encode.values() if not e.get("extrapolated"))
    out["encode_measured_seconds"] = measured
    out["peak_rss_mb"] = peak_rss_mb()
    out["records"] = records
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")


def run_child(engine: str, family: str, paths: dict, args, out: Path) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", engine, "--family", family,
        "--data-root", str(paths["data"]), "--checkpoint", str(paths[family]), "--cache-dir", str(paths["cache"] / family),
        "--epochs", str(args.epochs), "--seeds", args.seeds, "--channels", str(args.channels),
        "--legacy-threads", str(args.legacy_threads), "--video-sample", args.video_sample, "--out", str(out),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_seconds"] = time.perf_counter() - start
    print(f"{family} {engine}: heads {result['heads_seconds']:.1f} s, total {result['total_seconds']:.1f} s, "
          f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


# ---------------------------------------------------------------------- comparison and report


def _key(record: dict) -> tuple:
    return (record["direction"], record["variant"], record["head"], record["seed"])


def compare(a: list[dict], b: list[dict]) -> dict:
    """Field-by-field agreement of two runs' records (same keys expected); `whole` counts linear
    records equal in every field but the wall time (per-unit outcomes included)."""
    by_key = {_key(r): r for r in b}
    fields = ("metrics", "same_modality", "val_metrics", "best_epoch")
    equal = {f: 0 for f in fields}
    linear = whole = 0
    max_diff = 0.0
    for record in a:
        if record["head"] != "linear":
            continue
        linear += 1
        other = by_key[_key(record)]
        whole += {k: v for k, v in record.items() if k != "seconds"} == {k: v for k, v in other.items() if k != "seconds"}
        for f in fields:
            equal[f] += record[f] == other[f]
        for f in ("metrics", "same_modality", "val_metrics"):
            for name, value in (record[f] or {}).items():
                max_diff = max(max_diff, abs(value - (other[f] or {}).get(name, np.nan)))
    return {"linear_records": linear, "equal": equal, "whole_records_equal": whole, "max_abs_metric_diff": max_diff}


def accuracy_table(records: list[dict]) -> list[str]:
    rows = []
    groups: dict[tuple, list[float]] = {}
    for r in records:
        groups.setdefault((r["direction"], r["variant"], r["head"]), []).append(r["metrics"]["accuracy"])
    for (direction, variant, head), values in sorted(groups.items()):
        rows.append(f"| {direction} | {variant} | {head} | {np.mean(values):.2f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.2f} | {len(values)} |")
    return rows


def write_report(args, meta: dict, results: dict) -> str:
    seeds = args.seeds
    lines = [
        "# Model selection at the real AVE size: grouped heads vs the per-head autograd loop",
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/eval_scale.py --clips {args.clips} --epochs {args.epochs} "
        f"--seeds {seeds} --families {args.families} --channels {args.channels} --legacy-threads {args.legacy_threads}"
        f"{' --single' if args.single else ''}{' --no-legacy' if args.no_legacy else ''}"
        f"{' --video-sample ' + args.video_sample if args.video_sample else ''}` (measured at commit "
        f"{meta.get('commit', 'unknown')})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, **shared with other developers' jobs while "
        f"measured** (load average {meta['load_before']:.1f} before, {meta['load_after']:.1f} after), torch "
        f"{meta['torch']}, CPU only. Wall times on a busy machine are upper bounds; ratios were measured in the "
        "same run, one process after the other.",
        "",
        f"Data (generated, {meta['data']['bytes'] / 1e9:.2f} GB in a temporary folder, {meta['data']['seconds']:.0f} s): "
        f"AVE layout, {args.clips} clips, split {meta['data']['split']}, video float32 `[N,10,7,7,512]`, "
        "audio `[N,10,128]`, 28 classes with a planted per-class mean. Checkpoints: random weights at the "
        "published sizes (400 x 256 codebook per level, video branch 2048 wide), float64: "
        + ", ".join(f"{f} {meta[f]['parameters'] / 1e6:.1f} M parameters ({meta[f]['bytes'] / 1e6:.0f} MB)" for f in args.families.split(","))
        + ".",
        "",
        f"Workload per family: both directions x {{linear, prototype}} x seeds {seeds} x the family's two "
        f"variants (+toc: `--channels {args.channels}`), strict protocol, {args.epochs} epochs, batch 80. "
        f"grouped: all linear heads of a direction together in lockstep, spread over forked worker processes "
        f"(as many as usable cores), 1 intra-op thread each; single: the same code one head at a time in one "
        f"process on 1 thread. "
        f"autograd: the per-head autograd loop with `--head-threads {args.legacy_threads}` (the issue measured torch's "
        "default threads about 2.3x slower than 1 thread on this machine).",
        "",
        "| family | run | encode video (s) | encode audio (s) | heads wall (s) | heads CPU (s) | total incl. encoding (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for family in args.families.split(","):
        runs = results[family]
        grouped = runs["grouped"]
        ev, ea = grouped["encode"]["ave/video"]["seconds"], grouped["encode"]["ave/audio"]["seconds"]
        encode_total = ev + ea
        for name in ("grouped", "single", "autograd"):
            if name not in runs:
                continue
            run = runs[name]
            # The later runs read the cached codes; their total adds the grouped run's encoding.
            total = run["total_seconds"] if name == "grouped" else run["total_seconds"] + encode_total
            mark = {k: "*" if grouped["encode"][k].get("extrapolated") else "" for k in ("ave/video", "ave/audio")}
            enc = f"{ev:.1f}{mark['ave/video']} | {ea:.1f}{mark['ave/audio']}" if name == "grouped" else "(cached) | (cached)"
            lines.append(f"| {family} | {name} | {enc} | {run['heads_seconds']:.1f} | {run['heads_cpu_seconds']:.1f} | "
                         f"{total:.1f} | {run['peak_rss_mb']:.0f} |")
        if "autograd" in runs:
            a = runs["autograd"]
            summary.append(f"* {family}: heads take **{a['heads_cpu_seconds'] / grouped['heads_cpu_seconds']:.1f}x less CPU "
                           f"time** grouped than with the per-head loop ({a['heads_cpu_seconds']:.0f} → "
                           f"{grouped['heads_cpu_seconds']:.0f} CPU s); wall time {a['heads_seconds']:.0f} s → "
                           f"{grouped['heads_seconds']:.0f} s ({a['heads_seconds'] / grouped['heads_seconds']:.1f}x, "
                           "inflated or deflated by whatever else ran at the time).")
        if "single" in runs:
            one = runs["single"]
            summary.append(f"* {family}: grouping alone (the same code one head at a time on one thread → grouped): "
                           f"{one['heads_seconds'] / grouped['heads_seconds']:.2f}x wall, "
                           f"{one['heads_cpu_seconds'] / grouped['heads_cpu_seconds']:.2f}x CPU.")
    for family in args.families.split(","):
        g = results[family]["grouped"]
        summary.append(f"* {family}: the grouped heads phase kept {g['heads_cpu_seconds'] / g['heads_seconds']:.2f} cores "
                       "busy on average (2 workers; on a machine shared with other jobs the workers get what the "
                       "scheduler leaves them, so the wall-time gain of a second worker is not measurable here; "
                       "CPU seconds are).")
    # What 2 dedicated cores would take if both were kept busy: the encoder and the grouped heads
    # use 2 threads / 2 workers, the per-head loop one thread.
    estimate_lines = []
    for family in args.families.split(","):
        runs = results[family]
        encode_cpu = sum(e["cpu_seconds"] for e in runs["grouped"]["encode"].values())
        line = (f"* {family}: grouped ≈ {encode_cpu / 2:.0f} s encoding + {runs['grouped']['heads_cpu_seconds'] / 2:.0f} s heads"
                f" = **{(encode_cpu + runs['grouped']['heads_cpu_seconds']) / 2:.0f} s**")
        if "autograd" in runs:
            line += (f"; the per-head loop ≈ {encode_cpu / 2:.0f} s + {runs['autograd']['heads_cpu_seconds']:.0f} s = "
                     f"{encode_cpu / 2 + runs['autograd']['heads_cpu_seconds']:.0f} s")
        estimate_lines.append(line + ".")
    grand = sum(results[f]["grouped"]["total_seconds"] for f in args.families.split(","))
    grand_encode = sum(results[f]["grouped"]["encode"][s]["seconds"] for f in args.families.split(",") for s in ("ave/video", "ave/audio"))
    notes = [f"{f} {k}: {e['sampled_clips']} clips encoded in {e['seconds'] * e['sampled_clips'] / e['clips']:.1f} s, "
             f"whole set extrapolated (*)" for f in args.families.split(",")
             for k, e in results[f]["grouped"]["encode"].items() if e.get("extrapolated")]
    if notes:
        lines += ["", "(*) extrapolated from the encoded sample's throughput; its codes were repeated over the set "
                  "(--video-sample): " + "; ".join(notes) + "."]
    lines += ["", *summary, "",
              f"**Full selection ({args.families}), grouped, encoding included: {grand:.0f} s** "
              f"(of which encoding {grand_encode:.0f} s, heads and the rest {grand - grand_encode:.0f} s); target ≤ 120 s: "
              f"**{'met' if grand <= 120 else 'not met'}**.",
              "",
              "On two dedicated cores, from the CPU seconds above (an estimate: it assumes both cores stay busy, "
              "which the encoder's two threads and the two head workers allow but this machine could not show):",
              "", *estimate_lines, "",
              "Where the time goes: H-DCID's level-2 video code runs the whole 2048-wide convolutional branch "
              "(3x3 512→1024 on the 7x7 map, 3x3 1024→2048, 1x1 2048→2048, then a 3x3 and a 1x1 2048-wide "
              "residual layer): about 0.70 G multiply-adds per segment, 14 GFLOP per clip, 58 TFLOP in float32 "
              "for the 4,143 AVE video clips. No two CPU cores do that in two minutes, so with an H-DCID "
              "checkpoint at the published size the 2-minute target cannot be met whatever the heads cost; "
              "the DCID half (no convolution at encode time) is where the heads decide the time.", ""]
    lines += ["## Encoding throughput and memory (float32, batch 64, torch's default threads)", "",
              "| family | set | clips | seconds | CPU seconds | clips/s | codes used (per level) | distinct codes per batch of 80 |",
              "|---|---|---|---|---|---|---|---|"]
    for family in args.families.split(","):
        for name, e in results[family]["grouped"]["encode"].items():
            mark = "*" if e.get("extrapolated") else ""
            lines.append(f"| {family} | {name} | {e['clips']} | {e['seconds']:.1f}{mark} | {e['cpu_seconds']:.1f}{mark} | "
                         f"{e['clips'] / e['seconds']:.2f} | {e['codes_used']} | {[round(x) for x in e['codes_per_batch80']]} |")
    lines += ["", "Peak RSS by stage (grouped run): " + "; ".join(
        f"{f}: after loading {results[f]['grouped']['rss_after_load_mb']:.0f} MB, after encoding "
        f"{results[f]['grouped']['rss_after_encode_mb']:.0f} MB, at the end {results[f]['grouped']['peak_rss_mb']:.0f} MB"
        for f in args.families.split(",")) + f". The video file is {meta['video_bytes'] / 1e9:.2f} GB: encoding streams it.", ""]
    lines += ["## Are the numbers the same?", "",
              "| family | runs compared | linear records | metrics equal | same-modality equal | val metrics equal | best epoch equal | whole records equal | max abs metric difference |",
              "|---|---|---|---|---|---|---|---|---|"]
    for family in args.families.split(","):
        runs = results[family]
        for other in ("single", "autograd"):
            if other not in runs:
                continue
            c = compare(runs["grouped"]["records"], runs[other]["records"])
            e = c["equal"]
            n = c["linear_records"]
            lines.append(f"| {family} | grouped vs {other} | {n} | {e['metrics']}/{n} | {e['same_modality']}/{n} | "
                         f"{e['val_metrics']}/{n} | {e['best_epoch']}/{n} | {c['whole_records_equal']}/{n} | "
                         f"{c['max_abs_metric_diff']:.3g} |")
    lines += ["", "grouped vs single is the same code in groups of N and of one (bitwise equal by construction; "
              "tests/test_eval_head_groups.py). grouped vs autograd is the factored computation vs the per-row "
              "autograd: the same function and gradients, summed in another order, so equal metrics are expected "
              "but a near-tie could in principle flip one prediction.", "",
              "## Accuracy (cross-modal, %, mean ± sd over seeds; grouped run)", "",
              "| direction | variant | head | accuracy | seeds |", "|---|---|---|---|---|"]
    for family in args.families.split(","):
        lines += accuracy_table(results[family]["grouped"]["records"])
    lines += ["", "Random-weight checkpoints carry little class information, so the accuracies only show that the "
              "heads train; they say nothing about the published models.", ""]
    return "\n".join(lines)


def run_all(args) -> tuple[dict, dict]:
    import shutil

    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
    commit = f"{commit} + uncommitted changes" if commit and dirty.strip() else commit
    meta: dict = {"torch": torch.__version__, "commit": commit or "unknown", "load_before": os.getloadavg()[0], "args": {
        name: getattr(args, name) for name in
        ("clips", "epochs", "seeds", "families", "channels", "legacy_threads", "single", "no_legacy", "video_sample")
    }}
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="eval-scale-", dir=args.workdir) as tmp:
        paths = {"data": Path(tmp) / "data", "cache": Path(tmp) / "cache"}
        meta["data"] = write_ave(paths["data"], args.clips)
        meta["video_bytes"] = (paths["data"] / "AVE-ECCV18-master" / "data" / "visual_feature.h5").stat().st_size
        print(f"data: {meta['data']}", flush=True)
        for i, family in enumerate(args.families.split(",")):
            paths[family] = Path(tmp) / f"{family}.pt"
            meta[family] = write_checkpoint(paths[family], f"{family}-avt", seed=i)
        for family in args.families.split(","):
            runs = results[family] = {}
            engines = ["grouped"] + (["single"] if args.single else []) + ([] if args.no_legacy else ["autograd"])
            for engine in engines:
                out = Path(tmp) / f"{family}-{engine}.json"
                runs[engine] = run_child(engine, family, paths, args, out)
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, args.keep / out.name)
    meta["load_after"] = os.getloadavg()[0]
    if args.keep is not None:
        (args.keep / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=sum(AVE_SPLIT))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--families", default="dcid,hdcid")
    parser.add_argument("--channels", type=int, default=224)
    parser.add_argument("--legacy-threads", type=int, default=1)
    parser.add_argument("--no-legacy", action="store_true", help="skip the per-head autograd loop")
    parser.add_argument("--single", action="store_true", help="also run the grouped code one head at a time")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary folder goes")
    parser.add_argument("--video-sample", default="", help="FAMILY:M[,FAMILY:M]: encode M video clips, repeat their codes")
    parser.add_argument("--keep", type=Path, default=None, help="copy meta.json and every run's JSON (with records) here")
    parser.add_argument("--report-from", type=Path, default=None, help="rewrite the report from a --keep folder; run nothing")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "eval_scale.md")
    parser.add_argument("--child", choices=("grouped", "single", "autograd"), help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.report_from is not None:
        meta = json.loads((args.report_from / "meta.json").read_text(encoding="utf-8"))
        for name in ("clips", "epochs", "seeds", "families", "channels", "legacy_threads", "single", "no_legacy", "video_sample"):
            setattr(args, name, meta["args"][name])
        results = {}
        for family in args.families.split(","):
            results[family] = {}
            for engine in ("grouped", "single", "autograd"):
                path = args.report_from / f"{family}-{engine}.json"
                if path.exists():
                    results[family][engine] = json.loads(path.read_text(encoding="utf-8"))
    else:
        meta, results = run_all(args)
    text = write_report(args, meta, results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    raw = args.output.with_suffix(".json")
    raw.write_text(json.dumps({"meta": meta, "results": {
        f: {k: {kk: vv for kk, vv in v.items() if kk != "records"} for k, v in runs.items()} for f, runs in results.items()
    }}, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
