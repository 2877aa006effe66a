"""The device-dependent checks on a GPU, in under five minutes; writes benchmarks/results/gpu.md.

1. Encode parity: a published-size DCID and H-DCID encoder (random weights, float64) encodes the
   same clips on the GPU and on the CPU; the code indices must be equal and the codewords agree.
2. One DCID and one H-DCID training step on the GPU (finite losses).
3. With two or more GPUs: a 2-process torchrun step (nccl); both ranks' codebooks must be
   identical afterwards.
4. Training throughput at the published sizes, batch 80, clips/s, default vs --reference-forwards.
5. Encode throughput (clips/s, audio + video + text) at the published sizes.

Without CUDA (or with --cpu) the script runs its CPU fallback: the same checks at tiny sizes
against the CPU itself, in seconds — it shows the script works, not that a GPU does
(tests/test_gpu_check.py runs it in CI). Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import PUBLISHED, TINY, RandomClips, config_for, measure  # noqa: E402

from hdcid.models import CmgEncoder, EncoderSizes  # noqa: E402
from hdcid.training import Trainer  # noqa: E402
from hdcid.training.distributed import Collective  # noqa: E402

WORKER_FLAG = "--distributed-worker"


def encoder_sizes(family: str, sizes: dict) -> EncoderSizes:
    return EncoderSizes(
        family=family, n_embeddings=sizes["n_embeddings"], audio_output_dim=sizes["audio_output_dim"],
        video_output_dim=sizes["video_output_dim"], text_output_dim=sizes["text_output_dim"],
    )


def clips(n: int, seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.randn(n, 10, 128, generator=g, dtype=dtype),
        "video": torch.rand(n, 10, 7, 7, 512, generator=g, dtype=dtype),
        "text": torch.randn(n, 10, 256, generator=g, dtype=dtype),
    }


def encode_parity(device: str, sizes: dict, n: int) -> list[dict]:
    """Per family and modality: indices equal on device and CPU (float64), largest codeword gap."""
    results = []
    for family in ("dcid-avt", "hdcid-avt"):
        torch.manual_seed(0)
        cpu = CmgEncoder(encoder_sizes(family, sizes)).double().eval()
        other = copy.deepcopy(cpu).to(device)
        inputs = clips(n, 1, torch.float64)
        with torch.no_grad():
            for modality, x in inputs.items():
                for level, ((cw_cpu, idx_cpu), (cw_dev, idx_dev)) in enumerate(
                    zip(cpu.encode(modality, x), other.encode(modality, x.to(device)), strict=True)
                ):
                    mismatched = int((idx_cpu != idx_dev.cpu()).sum())
                    gap = float((cw_cpu - cw_dev.cpu()).abs().max())
                    results.append({
                        "family": family, "modality": modality, "level": level + 1, "codes": idx_cpu.numel(),
                        "mismatched": mismatched, "max_codeword_gap": gap, "ok": mismatched == 0,
                    })
    return results


def training_steps(device: str, sizes: dict, batch: int) -> list[dict]:
    results = []
    data = RandomClips(batch, word_dim=sizes["word_dim"])
    for levels, name in ((1, "DCID"), (2, "H-DCID")):
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(config_for(levels, batch, False, device, sizes), data, tmp)
            start = time.perf_counter()
            metrics = trainer.train_step(list(range(batch)))
            seconds = time.perf_counter() - start
        finite = all(v == v and abs(v) != float("inf") for v in metrics.values())
        results.append({"model": name, "loss": metrics["loss"], "seconds": seconds, "ok": finite})
    return results


def distributed_worker(out: str) -> None:
    """One rank of the 2-GPU check (started by torchrun): two H-DCID steps, then compare codebooks."""
    collective = Collective.join("cuda")
    try:
        data = RandomClips(8, word_dim=TINY["word_dim"])
        run_dir = Path(out).parent / "run"
        trainer = Trainer(config_for(2, 8, False, "cuda", TINY), data, run_dir, collective=collective)
        for _ in range(2):
            metrics = trainer.train_step(list(range(8)))
        codebook = trainer.model.quantizer.embedding.detach().contiguous()
        parts = [torch.empty_like(codebook) for _ in range(collective.size)]
        torch.distributed.all_gather(parts, codebook)
        if collective.is_main:
            identical = all(torch.equal(parts[0], p) for p in parts[1:])
            Path(out).write_text(json.dumps({"identical": identical, "loss": metrics["loss"], "ranks": collective.size}))
    finally:
        collective.close()


def two_gpu_step() -> dict:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return {"ok": None, "note": f"skipped: {count} GPU(s) (tests/test_distributed.py checks 2 gloo processes on CPU)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   str(Path(__file__).resolve()), WORKER_FLAG, str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        if done.returncode != 0 or not out.exists():
            return {"ok": False, "note": "torchrun failed: " + done.stderr.strip().splitlines()[-1][:300]}
        result = json.loads(out.read_text())
    return {"ok": result["identical"], "note": f"codebooks identical on both ranks: {result['identical']}, loss {result['loss']:.4f}"}


def encode_throughput(device: str, sizes: dict, n: int, repeats: int = 3) -> float:
    torch.manual_seed(0)
    encoder = CmgEncoder(encoder_sizes("hdcid-avt", sizes)).to(device).eval()
    inputs = {k: v.to(device) for k, v in clips(n, 2, torch.float32).items()}
    with torch.no_grad():
        for modality, x in inputs.items():
            encoder.encode(modality, x)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            for modality, x in inputs.items():
                encoder.encode(modality, x)
        if device == "cuda":
            torch.cuda.synchronize()
    return repeats * n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the CPU fallback even when CUDA is available")
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "gpu.md"))
    parser.add_argument(WORKER_FLAG, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.distributed_worker:
        distributed_worker(args.distributed_worker)
        return 0
    gpu = torch.cuda.is_available() and not args.cpu
    device = "cuda" if gpu else "cpu"
    sizes, batch, parity_clips, encode_clips = (PUBLISHED, 80, 16, 512) if gpu else (TINY, 4, 2, 8)
    if not gpu:
        torch.set_num_threads(1)
    began = time.perf_counter()
    parity = encode_parity(device, sizes, parity_clips)
    steps = training_steps(device, sizes, batch)
    distributed = two_gpu_step() if gpu else {"ok": None, "note": "skipped: CPU fallback"}
    data = RandomClips(batch, word_dim=sizes["word_dim"])
    timed, warmup = (3, 1) if gpu else (1, 0)  # the fallback only runs the code
    throughput = []
    for levels, name in ((1, "DCID"), (2, "H-DCID")):
        default = measure(config_for(levels, batch, False, device, sizes), data, timed, warmup)
        reference = measure(config_for(levels, batch, True, device, sizes), data, timed, warmup)
        throughput.append((name, default, reference))
    encoding = encode_throughput(device, sizes, encode_clips)
    elapsed = time.perf_counter() - began

    name = torch.cuda.get_device_name(0) if gpu else (platform.processor() or platform.machine())
    mode = "GPU" if gpu else "CPU fallback (tiny sizes: it checks the script, not a GPU)"
    lines = [
        "# GPU check",
        "",
        f"Generated by `benchmarks/gpu_check.py` ({mode}) on {name}, torch {torch.__version__}, in {elapsed:.0f} s.",
        "",
        "## Encode parity, float64, device vs CPU",
        "",
        "| family | modality | level | codes | mismatched indices | largest codeword gap | ok |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['family']} | {r['modality']} | {r['level']} | {r['codes']} | {r['mismatched']} | "
          f"{r['max_codeword_gap']:.3g} | {r['ok']} |" for r in parity),
        "",
        f"## One training step on {device} (batch {batch})",
        "",
        "| model | loss | seconds (first step) | finite |",
        "|---|---|---|---|",
        *(f"| {r['model']} | {r['loss']:.4f} | {r['seconds']:.2f} | {r['ok']} |" for r in steps),
        "",
        "## Two processes (torchrun, nccl)",
        "",
        distributed["note"],
        "",
        f"## Training throughput, batch {batch} ({'published sizes' if gpu else 'tiny sizes'}), float32",
        "",
        f"Median of {timed} timed step(s) after {warmup} warm-up step(s); both H-DCID levels active.",
        "",
        "| model | default clips/s | --reference-forwards clips/s | default / reference |",
        "|---|---|---|---|",
        *(f"| {n} | {d.clips_per_s:.1f} | {r.clips_per_s:.1f} | {d.clips_per_s / r.clips_per_s:.2f}x |"
          for n, d, r in throughput),
        "",
        "## Encode throughput",
        "",
        f"H-DCID encoder, float32, {encode_clips} clips per call, audio + video + text: {encoding:.1f} clips/s.",
        "",
    ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))
    failed = [r for r in parity + steps if not r["ok"]] + ([distributed] if distributed["ok"] is False else [])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
