"""Training throughput (clips/s) of DCID and H-DCID at the published sizes, default vs
--reference-forwards, measured side by side in one process; writes
benchmarks/results/train_throughput.md.

Published sizes: 400 codes x 256, audio / video / text specific widths 256 / 2048 / 256, 768-d
word features, audio [10, 128], video [10, 7, 7, 512] maps, T = 10, both H-DCID levels active
(level2_start 0), random paired features (the arithmetic does not depend on the values). The
published batch is 80; on a 2-core CPU a batch of 80 at these widths takes minutes per step, so
the CPU table uses a small batch (--batch-size) and says so. `--profile` adds the top operators
of one H-DCID default step (torch.profiler).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hdcid.training import PretrainModel, TrainConfig, Trainer  # noqa: E402

PUBLISHED = dict(
    n_embeddings=400, audio_output_dim=256, video_output_dim=2048, text_output_dim=256, word_dim=768,
)
# Small enough for a CPU check in seconds (the GPU check's fallback).
TINY = dict(n_embeddings=32, audio_output_dim=16, video_output_dim=16, text_output_dim=16, word_dim=24)


class RandomClips:
    """Random paired features in the published layout."""

    def __init__(self, n: int, word_dim: int = 768, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.audio = rng.normal(size=(n, 10, 128)).astype(np.float32)
        self.video = np.abs(rng.normal(size=(n, 10, 7, 7, 512))).astype(np.float32)
        self.text = rng.normal(size=(n, 10, word_dim)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.audio)

    def read(self, rows):
        return {"audio": self.audio[rows], "video": self.video[rows], "text": self.text[rows]}


@dataclass
class Throughput:
    clips_per_s: float  # median over the timed steps
    step_seconds: list[float]

    @property
    def spread(self) -> str:
        return f"{min(self.step_seconds):.2f}-{max(self.step_seconds):.2f} s/step"


def config_for(levels: int, batch: int, reference_forwards: bool, device: str, sizes: dict) -> TrainConfig:
    return TrainConfig(
        levels=levels, epochs=1, batch_size=batch, seed=0, n_embeddings=sizes["n_embeddings"],
        embedding_dim=256, audio_output_dim=sizes["audio_output_dim"], video_output_dim=sizes["video_output_dim"],
        text_output_dim=sizes["text_output_dim"], level2_start=0, reference_forwards=reference_forwards,
        diagnostics_clips=0, device=device,
    )


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(config: TrainConfig, data: RandomClips, steps: int, warmup: int = 1) -> Throughput:
    """`warmup` untimed steps (allocations, first-call costs), then `steps` timed steps on one batch."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, data, tmp)
        trainer.model.train()
        rows = list(range(config.batch_size))
        for _ in range(warmup):
            trainer.train_step(rows)
        times = []
        for _ in range(steps):
            _sync(config.device)
            start = time.perf_counter()
            trainer.train_step(rows)
            _sync(config.device)
            times.append(time.perf_counter() - start)
    return Throughput(config.batch_size / statistics.median(times), times)


def measure_pair(configs: tuple[TrainConfig, TrainConfig], data: RandomClips, steps: int) -> tuple[Throughput, Throughput]:
    """Two configurations side by side: one warm-up step each, then their timed steps alternate,
    so a machine whose load changes during the run slows both alike."""
    with tempfile.TemporaryDirectory() as tmp:
        trainers = [Trainer(c, data, Path(tmp) / str(i)) for i, c in enumerate(configs)]
        times: list[list[float]] = [[], []]
        rows = list(range(configs[0].batch_size))
        for trainer in trainers:
            trainer.model.train()
            trainer.train_step(rows)
        for _ in range(steps):
            for trainer, timed in zip(trainers, times, strict=True):
                _sync(trainer.config.device)
                start = time.perf_counter()
                trainer.train_step(rows)
                _sync(trainer.config.device)
                timed.append(time.perf_counter() - start)
    return tuple(Throughput(len(rows) / statistics.median(t), t) for t in times)


def table(batch: int, steps: int, device: str, sizes: dict) -> tuple[list[str], list[tuple]]:
    """Markdown rows (model, default, reference-forwards, ratio) and the raw numbers."""
    data = RandomClips(batch, word_dim=sizes["word_dim"])
    rows, raw = [], []
    for levels, name in ((1, "DCID"), (2, "H-DCID")):
        default, reference = measure_pair(
            (config_for(levels, batch, False, device, sizes), config_for(levels, batch, True, device, sizes)), data, steps,
        )
        raw.append((name, default, reference))
        rows.append(
            f"| {name} | {default.clips_per_s:.2f} ({default.spread}) | {reference.clips_per_s:.2f} "
            f"({reference.spread}) | {default.clips_per_s / reference.clips_per_s:.2f}x |"
        )
    return rows, raw


def profile_step(batch: int, device: str, sizes: dict, top: int = 12) -> list[str]:
    """The operators that cost most in one H-DCID default step (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415 (only with --profile)

    data = RandomClips(batch, word_dim=sizes["word_dim"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config_for(2, batch, False, device, sizes), data, tmp)
        rows = list(range(batch))
        trainer.train_step(rows)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=activities) as prof:
            trainer.train_step(rows)
    averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    lines = ["| operator | self CPU ms | share | calls |", "|---|---|---|---|"]
    for e in averages:
        lines.append(f"| `{e.key}` | {e.self_cpu_time_total / 1000:.0f} | {e.self_cpu_time_total / total:.0%} | {e.count} |")
    return lines


def parameter_counts(levels: int, sizes: dict) -> tuple[int, int]:
    """(parameters the main Adam updates, of which in video modules) at these sizes."""
    with torch.device("meta"):
        model = PretrainModel(config_for(levels, 1, False, "cpu", sizes), 128, 512, sizes["word_dim"])
    named = [(n, p) for module in model.main_modules() for n, p in module.named_parameters()]
    return sum(p.numel() for _, p in named), sum(p.numel() for n, p in named if "ideo" in n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "train_throughput.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, raw = table(args.batch_size, args.steps, "cpu", PUBLISHED)
    lines = [
        "# Training throughput at the published sizes (CPU)",
        "",
        f"Generated by `benchmarks/train_throughput.py` on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {args.threads} threads, float32.",
        "Published sizes: 400 codes x 256, specific widths audio / video / text 256 / 2048 / 256, 768-d word "
        "features, video [10, 7, 7, 512], T = 10, both H-DCID levels active (level2_start 0). "
        f"Batch {args.batch_size} (the published batch is 80: on this CPU one step of 80 takes minutes; "
        "`benchmarks/gpu_check.py` measures batch 80 on a GPU). "
        f"Median of {args.steps} timed steps after one warm-up step, the two modes' steps alternating (so "
        "changing load on the machine slows both alike); the range of the timed steps in brackets.",
        "`--reference-forwards` runs the encoder 6x per H-DCID batch (5 CLUB iterations + 1), as the "
        "published H-DCID pretraining; DCID runs it once in both modes, so its two columns differ only by noise.",
        "",
        "| model | default clips/s | --reference-forwards clips/s | default / reference |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    total, video = parameter_counts(2, PUBLISHED)
    lines += [
        f"At these sizes the main Adam updates {total / 1e6:.0f} M parameters per H-DCID step, "
        f"{video / 1e6:.0f} M of them in the video modules (the 2048-wide video branch and its decoder).",
        "",
    ]
    if args.profile:
        lines += [
            f"## Where one H-DCID default step spends its time (batch {args.batch_size}, torch.profiler, self CPU time)",
            "",
            *profile_step(args.batch_size, "cpu", PUBLISHED),
            "",
        ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
