"""Does `toc encode`'s default float32 path choose the same codes as the float64 reference path?

Run: .venv/bin/python benchmarks/float32_codes.py [--clips 64] [--seed 0]
Writes benchmarks/results/float32_codes.md and float32_codes.jsonl (one line per checkpoint,
modality and level). For each reference fixture checkpoint (tests/fixtures: DCID, H-DCID, FCID)
and modality, the fixture's own inputs plus `--clips` random clips drawn like them (seeded) are
encoded twice through the same session code, float64 and float32, and the codes compared step by
step. float64 is the reference's arithmetic (its codes equal the fixtures' bit for bit, which the
tests assert); this measures what the faster default gives up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402

from toc.codebook.checkpoint import load_checkpoint  # noqa: E402
from toc.codebook.encode import EncodingSession  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
CHECKPOINTS = {
    "dcid_small": (FIXTURES / "cmg-reference" / "dcid_small.pt", FIXTURES / "cmg-reference" / "dcid_small_io.pt"),
    "hdcid_small": (FIXTURES / "cmg-reference" / "hdcid_small.pt", FIXTURES / "cmg-reference" / "hdcid_small_io.pt"),
    "fcid_small": (FIXTURES / "fcid-reference" / "fcid_small.pt", FIXTURES / "fcid-reference" / "fcid_small_io.pt"),
}
RESULTS = ROOT / "benchmarks" / "results"


def random_clips(modality: str, like: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Clips shaped like the fixture's inputs: per-element noise plus a per-clip offset (the
    fixtures' own recipe); video is non-negative like VGG19 pool5 maps."""
    shape = (n, *like.shape[1:])
    offset_shape = (n,) + (1,) * (len(shape) - 1)
    clips = rng.standard_normal(shape) + 1.5 * rng.standard_normal(offset_shape)
    if modality == "video":
        clips = np.maximum(clips, 0.0)
    if modality == "text":
        clips = 0.5 * clips
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64, help="random clips per modality, besides the fixture's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "float32_codes.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (checkpoint_path, io_path) in CHECKPOINTS.items():
        checkpoint = load_checkpoint(checkpoint_path)
        io = torch.load(io_path, map_location="cpu", weights_only=True)
        sessions = {dtype: EncodingSession(checkpoint, dtype=dtype) for dtype in (torch.float64, torch.float32)}
        for modality in checkpoint.sizes.modalities:
            if modality not in io:
                continue
            rng = np.random.default_rng([args.seed, sum(map(ord, name + modality))])
            given = io[modality].double().numpy()
            if modality == "text" and given.shape[-1] != checkpoint.sizes.text_dim:
                continue  # raw word vectors (FCID reads 768-d text directly; covered by its own width)
            clips = np.concatenate([given, random_clips(modality, given, args.clips, rng)])
            codes = {
                dtype: [level_codes for level_codes, _ in session.encode_batch(modality, clips)]
                for dtype, session in sessions.items()
            }
            for level, (c64, c32) in enumerate(zip(codes[torch.float64], codes[torch.float32], strict=True)):
                rows.append({
                    "checkpoint": name, "modality": modality, "level": level, "clips": int(len(clips)),
                    "steps": int(c64.size), "agree": int((c64 == c32).sum()),
                })
    header = [
        "# float32 vs float64 codes",
        "",
        *provenance.header(
            "benchmarks/float32_codes.py", provenance.python_argv(), f"input draw seed {args.seed}",
            ["toc/codebook/encode.py", "toc/codebook/checkpoint.py", "hdcid/models.py", "hdcid/fcid.py", "hdcid/quantizer.py"],
        ),
        "",
        "Inputs: each fixture's own 2 clips plus the random clips (drawn like the fixtures' inputs), one "
        "torch thread. float64 is the reference's arithmetic; the tests assert that its codes equal the "
        "fixtures'.",
        "",
        "| checkpoint | modality | level | clips | steps | same code in float32 |",
        "|---|---|---|---|---|---|",
    ]
    lines = [
        f"| {r['checkpoint']} | {r['modality']} | {r['level']} | {r['clips']} | {r['steps']} | "
        f"{r['agree']} / {r['steps']} ({100 * r['agree'] / r['steps']:.1f}%) |"
        for r in rows
    ]
    total, agree = sum(r["steps"] for r in rows), sum(r["agree"] for r in rows)
    footer = [
        "",
        f"In all: {agree} of {total} steps ({100 * agree / total:.2f}%) chose the same code. The "
        "fixtures' inputs are well separated from ties; real features can come closer to a tie, where "
        "float32 rounding may pick the neighbour: `toc encode --dtype float64` reproduces the reference "
        "exactly.",
    ]
    provenance.write_results(args.output, header + lines + footer, rows)
    print("\n".join(header + lines + footer))


if __name__ == "__main__":
    main()
