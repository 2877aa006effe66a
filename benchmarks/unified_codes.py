"""Do paired audio and video land on the same code ids? The held-out check of a training recipe.

For each corpus seed and row: `toc synth-spoken-digits DIR --seed S` (a seed never used while
developing), `toc train --data-root DIR` with every default plus the row's flags, then
`toc eval ave --variant hdcid,dcid --head codes,prototype,linear` (strict protocol, head seed 0)
and `toc health last.pt --task ave` (audio–video κ, NMI, codes used / shared on the AVE test
split's event seconds). Train time is the wall-clock and CPU time (user + sys) of the
`toc train` process, one torch thread, `nice`d; the machine is shared, so wall time is an upper
bound. Finished steps are kept under --work and skipped when the script runs again.

    python benchmarks/unified_codes.py [--seeds 11] [--rows default shared] [--work /tmp/toc-unified-codes]

Prints the markdown rows of benchmarks/results/unified_codes.md (the prose there is written by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOC = [sys.executable, "-m", "cli"]
ROWS = {
    "default": (),
    # The combination the old-layout exploration found to share codes best (code matching with
    # its usage term, and no dead-code resets within a run on a small corpus).
    "shared": ("--code-match-weight", "1", "--code-usage-weight", "1", "--reset-patience", "reference"),
}


def run(command: list[str], stdout: Path, stderr: Path, timing: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    prefix = ["nice", "-n", "10"] + (["/usr/bin/time", "-o", str(timing), "-f", "%e %U %S"] if timing else [])
    with open(stdout, "w") as out, open(stderr, "w") as err:
        subprocess.run([*prefix, *command], stdout=out, stderr=err, env=env, cwd=REPO, check=True)


def corpus(work: Path, seed: int) -> Path:
    root = work / f"sd{seed}"
    if not (root / ".built").exists():
        work.mkdir(parents=True, exist_ok=True)
        run([*TOC, "synth-spoken-digits", str(root), "--seed", str(seed), "--force"],
            work / f"sd{seed}.json", work / f"sd{seed}.err")  # fmt: skip
        (root / ".built").write_text("ok\n")
    return root


def one(work: Path, seed: int, row: str) -> dict:
    data = corpus(work, seed)
    name = f"{row}-s{seed}"
    out = work / "runs" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    base = str(out)
    if not (out / "last.pt").exists():
        run([*TOC, "train", "--data-root", str(data), "-o", base, "--force", *ROWS[row]],
            Path(base + ".train.json"), Path(base + ".train.err"), Path(base + ".train.time"))  # fmt: skip
    cache = str(work / f"cache-{name}")
    if not Path(base + ".eval.jsonl").exists():
        run([*TOC, "eval", "ave", "--checkpoint", f"{base}/last.pt", "--data-root", str(data), "--variant",
             "hdcid,dcid", "--head", "codes,prototype,linear", "--head-threads", "1", "--cache-dir", cache],
            Path(base + ".eval.jsonl"), Path(base + ".eval.err"))  # fmt: skip
    if not Path(base + ".health.json").exists():
        run([*TOC, "health", f"{base}/last.pt", "--task", "ave", "--data-root", str(data), "--cache-dir", cache],
            Path(base + ".health.json"), Path(base + ".health.err"))  # fmt: skip
    return summarise(out, seed, row)


def summarise(out: Path, seed: int, row: str) -> dict:
    base = str(out)
    wall, user, system = (float(x) for x in Path(base + ".train.time").read_text().split()[-3:])
    records = [json.loads(line) for line in Path(base + ".eval.jsonl").read_text().splitlines() if line.startswith("{")]
    transfer = {(r["variant"], r["head"], r["direction"]): r["metrics"]["accuracy"] for r in records}
    health = json.loads(Path(base + ".health.json").read_text())
    summary = json.loads(Path(base + ".train.json").read_text())
    return {"row": row, "corpus_seed": seed, "train_wall_min": wall / 60, "train_cpu_min": (user + system) / 60,
            "epochs": summary.get("epochs"), "steps": summary.get("total_step"), "transfer": transfer,
            "levels": health["levels"]}  # fmt: skip


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def markdown(result: dict) -> list[str]:
    t = result["transfer"]
    lines = []
    for variant in ("hdcid", "dcid"):
        cells = [
            f"{_pct(t.get((variant, head, 'v2a')))} / {_pct(t.get((variant, head, 'a2v')))}"
            for head in ("codes", "prototype", "linear")
        ]
        levels = result["levels"] if variant == "hdcid" else result["levels"][:1]
        kappa = " / ".join(f"{lv['kappa']:.2f}" for lv in levels)
        nmi = " / ".join(f"{lv['nmi']:.2f} ({lv['nmi_shuffled']:.2f})" for lv in levels)
        used = " / ".join(f"a{lv['codes_used']['audio']} v{lv['codes_used']['video']} s{lv['codes_shared']}" for lv in levels)
        lines.append(
            f"| {result['row']} | {result['corpus_seed']} | {variant} | {kappa} | {nmi} | {' | '.join(cells)} | "
            f"{used} | {result['train_wall_min']:.1f} ({result['train_cpu_min']:.1f}) |"
        )
    return lines


HEADER = [
    "| row | corpus seed | variant | κ a–v (L1 / L2) | NMI (shuffled) | code-id v2a / a2v | prototype v2a / a2v | "
    "linear v2a / a2v | codes used on test events (L1 / L2) | train min wall (CPU) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=["default", "shared"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-unified-codes"))
    args = parser.parse_args()
    lines = list(HEADER)
    for seed in args.seeds:
        for row in args.rows:
            lines += markdown(one(args.work, seed, row))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
