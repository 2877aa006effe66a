"""Writes tests/golden/units/results.jsonl: result lines of the current schema, with per-unit
outcomes, for the golden report of the bootstrap path. Seeded; rerun only to change the fixture:

    PYTHONPATH=. python tests/golden/make_units_results.py
    PYTHONPATH=. python -m cli report tests/golden/units/results.jsonl -o tests/golden/units --force
    rm tests/golden/units/chart-*.png tests/golden/units/report.html   # the test compares the text files
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from toc.eval.llp_metrics import ModalityParse, llp_scores  # noqa: E402
from toc.eval.metrics import segment_count_parts, segment_scores  # noqa: E402
from toc.eval.records import unit_ids_digest  # noqa: E402

VARIANTS = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")
OUT = Path(__file__).resolve().parent / "units" / "results.jsonl"


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def clip_line(task, direction, variant, head, protocol, seed, correct, val, **extra):
    correct, val = [int(x) for x in correct], [int(x) for x in val]
    line = {
        "task": task, "direction": direction, "variant": variant, "head": head, "protocol": protocol,
        "seed": seed, "metrics": {"accuracy": 100.0 * sum(correct) / len(correct)},
        "val_metrics": {"accuracy": 100.0 * sum(val) / len(val)},
        "same_modality": {"accuracy": 100.0 * sum(val) / len(val)},
        "unit": "clip", "parts_metrics": ["accuracy"], "n_eval": len(correct), "n_val": len(val),
        "eval_parts": correct, "val_parts": val,
        "eval_units_sha256": unit_ids_digest(ids(f"{task}-e", len(correct))),
        "val_units_sha256": unit_ids_digest(ids(f"{task}-v", len(val))),
        "val_split": "evaluation" if protocol == "reference" else "validation",
        "checkpoint_sha256": ("a1" if variant.startswith("dcid") else "b2") * 32,
    }
    line.update(extra)
    return line


def main() -> None:
    rng = np.random.default_rng(20260101)
    lines: list[dict] = [{
        "kind": "health", "family": "dcid", "checkpoint": "/runs/dcid/last.pt",
        "checkpoint_sha256": "a1" * 32, "level": 0, "codes_used": 61, "n_codes": 64,
        "perplexity": 45.84, "agreement": 80.03,
    }]
    not_checked = {"checked": False, "reason": "ave/audio ids are row numbers, not video ids"}
    # AVE, prototype head: deterministic, every seed alike; dcid one clip ahead of dcid+toc.
    base = rng.random(45) < 0.6
    eval_sets = {"dcid": base.copy(), "dcid+toc": base.copy(), "hdcid": rng.random(45) < 0.5,
                 "hdcid+toc": rng.random(45) < 0.55}
    eval_sets["dcid"][np.flatnonzero(~base)[0]] = True
    val_base = rng.random(20) < 0.6
    val_sets = {"dcid": val_base.copy(), "dcid+toc": val_base.copy(), "hdcid": rng.random(20) < 0.5,
                "hdcid+toc": rng.random(20) < 0.5}
    val_sets["dcid"][np.flatnonzero(~val_base)[0]] = True
    for v in VARIANTS:
        for seed in (0, 1, 2):
            lines.append(clip_line("ave", "v2a", v, "prototype", "strict", seed, eval_sets[v], val_sets[v],
                                   chance=3.5714, pretrain_overlap=not_checked))
    # AVE, linear head: random over seeds; hdcid+toc clearly better.
    for seed in (0, 1, 2):
        for v, p in zip(VARIANTS, (0.45, 0.47, 0.5, 0.92), strict=True):
            lines.append(clip_line(
                "ave", "v2a", v, "linear", "strict", seed, rng.random(45) < p, rng.random(20) < p,
                chance=3.5714, best_epoch=int(rng.integers(0, 10)), pretrain_overlap=not_checked,
            ))
    # UCF↔VGGSound strict with pretraining overlap, two pretraining runs; and the reference protocol.
    overlap = {"checked": True, "pretraining_list": "vggsound-avel40k.csv", "policy": "report",
               "evaluated": 60, "in_pretraining": 60, "same_modality_in_pretraining": 0}
    for pretrain in (0, 1):
        for v, p in zip(VARIANTS, (0.8, 0.82, 0.78, 0.8), strict=True):
            correct, val = rng.random(60) < p, rng.random(30) < p
            for seed in (0, 1):
                lines.append(clip_line(
                    "ucf-vggsound", "v2a", v, "prototype", "strict", seed, correct, val, chance=6.25,
                    pretrain_run=pretrain, split_seed=0, pretrain_overlap=overlap,
                ))
    for v, p in zip(VARIANTS, (0.6, 0.9, 0.62, 0.64), strict=True):
        correct = rng.random(60) < p
        lines.append(clip_line("ucf-vggsound", "a2v", v, "prototype", "reference", 0, correct, correct,
                               chance=6.25))
    # AVVP, prototype head: per-video counts and LLP scores; 30 evaluated videos, 15 validation.
    n_classes, steps = 5, 10
    labels = rng.random((30, steps, n_classes)) < 0.25
    val_labels = rng.random((15, steps, n_classes)) < 0.25
    for v, hit in zip(VARIANTS, (0.6, 0.62, 0.7, 0.72), strict=True):
        pred = np.where(labels, rng.random(labels.shape) < hit, rng.random(labels.shape) < 0.1)
        val_pred = np.where(val_labels, rng.random(val_labels.shape) < hit, rng.random(val_labels.shape) < 0.1)
        llp = llp_scores(audio=ModalityParse(pred, labels), n_classes=n_classes)
        metrics = {**segment_scores(pred, labels, n_classes), **llp.metrics}
        for seed in (0, 1):
            lines.append({
                "task": "avvp", "direction": "v2a", "variant": v, "head": "prototype", "protocol": "strict",
                "seed": seed, "metrics": metrics,
                "val_metrics": segment_scores(val_pred, val_labels, n_classes),
                "unit": "video", "parts_metrics": ["f1", "precision", "recall"], "n_eval": 30, "n_val": 15,
                "eval_parts": segment_count_parts(pred, labels, n_classes).astype(int).tolist(),
                "val_parts": segment_count_parts(val_pred, val_labels, n_classes).astype(int).tolist(),
                "eval_units_sha256": unit_ids_digest(ids("avvp-e", 30)),
                "val_units_sha256": unit_ids_digest(ids("avvp-v", 15)), "val_split": "validation",
                "llp_per_video": {k: [float(x) for x in a] for k, a in llp.per_video.items()},
                "llp_both_directions": {"n_videos": 24, "metrics": {
                    "llp_segment_av": 40.0 + hit * 10, "llp_segment_type_at_av": 45.0 + hit * 10,
                    "llp_segment_event_at_av": 50.0 + hit * 10}},
                "split_seed": 0,
                "pretrain_overlap": {"checked": True, "pretraining_list": "vggsound-avel40k.csv",
                                     "policy": "report", "evaluated": 30, "in_pretraining": 0,
                                     "same_modality_in_pretraining": 0},
            })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))


if __name__ == "__main__":
    main()
