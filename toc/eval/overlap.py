"""Evaluated clips that the encoder saw in pretraining: found by video id, reported or excluded.

The strict protocol holds evaluated videos out of the head's training. The encoder is another
matter: its codebook was pretrained on a corpus (VGGSound-AVEL), and a downstream set may list
the same videos. In the published data the VGGSound side of UCF↔VGGSound is drawn from
VGGSound, so its evaluated clips can be pretraining clips; AVVP's YouTube ids can be too. Ids
that are row numbers (AVE) cannot be matched against a list of video ids, and that is said.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cmg_base.errors import literal
from toc.data.base import TaskData
from toc.data.layout import resolve_paths
from toc.data.vggsound import read_pretrain_ids
from toc.errors import ConfigError
from toc.eval.protocols import DirectionPlan, Rows
from toc.vocabulary import OVERLAP_POLICIES


@dataclass(frozen=True)
class PretrainingList:
    """The video ids of a pretraining corpus and what to do with evaluated clips among them."""

    ids: frozenset[str]
    source: str  # the list's file name, for the record and the report
    policy: str = "report"

    def __post_init__(self):
        if self.policy not in OVERLAP_POLICIES:
            raise ConfigError(
                f"{{}} must be one of {', '.join(OVERLAP_POLICIES)}, not {literal(repr(self.policy))}",
                settings=("pretrain_overlap",),
            )

    @staticmethod
    def from_ids(ids, source: str | Path, policy: str = "report") -> PretrainingList:
        return PretrainingList(frozenset(str(i) for i in ids), Path(source).name, policy)


def apply_pretraining_overlap(
    data: TaskData, plan: DirectionPlan, pretraining: PretrainingList | None
) -> tuple[DirectionPlan, dict[str, Any] | None]:
    """Check the evaluated rows of a strict plan against the pretraining list.

    Returns the plan (without the overlapping rows under "exclude": evaluated rows and the
    same-modality held-out rows, which are scored too) and what the record says about it:
    None for the reference protocol (it reproduces the published runs as they are), else
    `{"checked": bool, ...}` with the counts or the reason nothing could be checked.
    """
    if plan.protocol != "strict":
        return plan, None
    if pretraining is None:
        return plan, {"checked": False, "reason": "no pretraining list was given or found"}
    evaluated = data.sets[plan.evaluate.set_name]
    if evaluated.id_kind != "video":
        return plan, {
            "checked": False,
            "reason": f"{evaluated.name} ids are row numbers, not video ids",
        }
    hit = _in_list(data, plan.evaluate, pretraining)
    held_out_hit = _in_list(data, plan.same_modality, pretraining)
    result: dict[str, Any] = {
        "checked": True, "pretraining_list": pretraining.source, "policy": pretraining.policy,
        "evaluated": len(plan.evaluate), "in_pretraining": int(hit.sum()),
        "same_modality_in_pretraining": int(held_out_hit.sum()),
    }
    if pretraining.policy == "exclude" and (hit.any() or held_out_hit.any()):
        evaluate = Rows(plan.evaluate.set_name, plan.evaluate.rows[~hit])
        if len(evaluate) == 0:
            raise ConfigError(
                f"task {data.task} {plan.direction}: every one of the {len(plan.evaluate)} evaluated "
                f"clips is in the pretraining list {literal(pretraining.source)}; nothing is left to evaluate "
                "with {} exclude",
                settings=("pretrain_overlap",),
            )
        same = Rows(plan.same_modality.set_name, plan.same_modality.rows[~held_out_hit])
        plan = replace(plan, evaluate=evaluate, same_modality=same)
        result["excluded"] = int(hit.sum())
    return plan, result


def _in_list(data: TaskData, rows: Rows, pretraining: PretrainingList) -> np.ndarray:
    ids = data.sets[rows.set_name].ids
    return np.array([str(ids[row]) in pretraining.ids for row in rows.rows], dtype=bool)


def overlap_note(result: dict[str, Any] | None) -> str | None:
    """The sentence a record's notes carry about the overlap, when there is something to say."""
    if not result or not result.get("checked") or not result.get("in_pretraining"):
        return None
    n, total, where = result["in_pretraining"], result["evaluated"], result["pretraining_list"]
    if result.get("excluded"):
        return f"{n} of {total} evaluated clips are in the pretraining list {where}: excluded"
    return (
        f"{n} of {total} evaluated clips are in the pretraining list {where}: the encoder saw "
        "them in pretraining (not excluded)"
    )


def find_pretraining_list(
    pretrain_csv: str | Path | None, *, data_root: str | Path | None = None,
    config: str | Path | None = None, policy: str = "report",
) -> PretrainingList | None:
    """The pretraining list to check against: `pretrain_csv` when given (it must exist), else
    the pretraining CSV of the data layout when that file exists, else None."""
    if pretrain_csv is not None:
        return PretrainingList.from_ids(read_pretrain_ids(pretrain_csv), pretrain_csv, policy)
    try:
        paths = resolve_paths("pretrain", data_root=data_root, config=config)
    except ConfigError:
        return None  # no data root or config section names one
    csv = paths.csv  # type: ignore[union-attr]
    if not Path(csv).is_file():
        return None
    return PretrainingList.from_ids(read_pretrain_ids(csv), csv, policy)
