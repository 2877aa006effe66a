"""Published TOC settings: the ones the FCID downstream scripts use, one preset per task.

Each launcher of the FCID release runs one direction per task with one score variant and one
(channels, max_num, min_num) triple; all four keep only a top block (min_num 0). The sweep the
launchers mention in a comment is `SWEPT_CHANNELS`. These are data for `toc eval --toc-preset
published` and `toc compare`'s `toc_preset` key; nothing here computes a selection (that is
toc.codebook.selection's job). The DCID / H-DCID release publishes no preset of its own; the
TOC / H-DCID scripts' per-task budgets (`PUBLISHED_BUDGETS`) are listed so that `--channels auto`
sweeps and benchmarks can mark and compare them, not applied by `--toc-preset`.
"""

from __future__ import annotations

from dataclasses import dataclass

from toc.codebook.settings import PRESET_NAMES, TocSettings
from toc.errors import ConfigError

# The channel budgets the FCID launchers list as swept (their trailing comment).
SWEPT_CHANNELS = (64, 128, 144, 168, 196, 224)


@dataclass(frozen=True)
class FcidTocPreset:
    """One published FCID downstream setting."""

    task: str  # our task name (toc.data)
    direction: str  # our direction name: the head trains on the first modality
    script: str  # the published script and its --dataset_name
    dataset_name: str
    score: str  # a toc.codebook.settings.SCORE_VARIANTS name
    channels: int
    max_num: int
    min_num: int
    n_epoch: int  # the script's n_epoch (it trains n_epoch - checkpoint epoch - 1 epochs)
    checkpoint_step: int  # the pretraining step of the checkpoint the script loads

    def settings(self, *, reference_topk: bool = False) -> TocSettings:
        return TocSettings.from_given(
            self.channels, max_num=self.max_num, min_num=self.min_num, score=self.score, reference_topk=reference_topk,
        )


FCID_TOC_PRESETS: dict[str, FcidTocPreset] = {
    p.task: p
    for p in (
        # AVE: all 256 channels, only re-ordered; the one script that keeps the variance term.
        FcidTocPreset("ave", "a2v", "ave_fc.py", "ave_av", "sim_var", 256, 1, 0, 25, 2000),
        FcidTocPreset("avvp", "a2v", "avvp_fc.py", "avvp_av", "sim_only", 196, 1, 0, 50, 1400),
        FcidTocPreset("ave-avvp", "v2a", "ave_avvp_fc.py", "ave_avvp_va", "sim_only", 128, 1, 0, 50, 2000),
        FcidTocPreset("ucf-vggsound", "a2v", "ucf_vggsound_fc.py", "vgga_ucfv", "sim_only", 168, 1, 0, 80, 2000),
    )
}


def fcid_preset(task: str) -> FcidTocPreset:
    if task not in FCID_TOC_PRESETS:
        raise ConfigError(f"no FCID TOC preset for task {task!r}; expected one of {', '.join(FCID_TOC_PRESETS)}")
    return FCID_TOC_PRESETS[task]


def preset_settings(preset: str, task: str, method: str, *, reference_topk: bool = False) -> TocSettings:
    """The TOC settings of a named preset for a task and a checkpoint's method (dcid, hdcid, fcid)."""
    if preset not in PRESET_NAMES:
        raise ConfigError(f"unknown TOC preset {preset!r}; expected one of {', '.join(PRESET_NAMES)}")
    if method != "fcid":
        raise ConfigError(
            f"the {preset} TOC preset exists for FCID checkpoints only (the {method} release "
            "publishes no per-task TOC setting); give the channels instead"
        )
    return fcid_preset(task).settings(reference_topk=reference_topk)


@dataclass(frozen=True)
class PublishedBudget:
    """The channel budget a published downstream script uses for one task, direction and method."""

    task: str
    direction: str  # ours: v2a trains on video (the scripts' `va`), a2v on audio (`av`)
    method: str  # dcid, hdcid or fcid
    channels: int
    max_num: int
    min_num: int
    script: str
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "channels": self.channels, "max_num": self.max_num, "min_num": self.min_num,
            "script": self.script, **({"note": self.note} if self.note else {}),
        }


# The TOC / H-DCID release's `.sh` files (the first uncommented block of each), and FCID's table.
# The same C applies to each H-DCID level (head input 2C).
PUBLISHED_BUDGETS: dict[tuple[str, str, str], PublishedBudget] = {
    (b.task, b.direction, b.method): b
    for b in (
        PublishedBudget("ave", "v2a", "dcid", 224, 1, 1, "ave.py ave_va"),
        PublishedBudget("ave", "a2v", "dcid", 224, 1, 1, "ave.py ave_av"),
        PublishedBudget("ave", "v2a", "hdcid", 128, 1, 0, "ave_mlvq.py ave_va"),
        PublishedBudget("ave", "a2v", "hdcid", 196, 1, 0, "ave_mlvq.py ave_av"),
        PublishedBudget("avvp", "v2a", "dcid", 128, 3, 1, "avvp.py avvp_va"),
        PublishedBudget("avvp", "a2v", "dcid", 128, 3, 1, "avvp.py avvp_av"),
        PublishedBudget("avvp", "v2a", "hdcid", 224, 1, 0, "avvp_mlvq.py avvp_va"),
        PublishedBudget("avvp", "a2v", "hdcid", 128, 1, 0, "avvp_mlvq.py",
                        "the block labelled av passes avvp_va (a copy-paste error of the release)"),
        PublishedBudget("ave-avvp", "v2a", "dcid", 224, 1, 0, "ave_avvp.py ave_avvp_va"),
        PublishedBudget("ave-avvp", "a2v", "dcid", 196, 1, 0, "ave_avvp.py ave_avvp_av"),
        PublishedBudget("ave-avvp", "v2a", "hdcid", 196, 1, 1, "ave_avvp_mlvq.py ave_avvp_va"),
        PublishedBudget("ave-avvp", "a2v", "hdcid", 224, 3, 1, "ave_avvp_mlvq.py ave_avvp_av"),
        PublishedBudget("ucf-vggsound", "v2a", "dcid", 128, 1, 0, "ucf_vggsound.py ucfv_vgga"),
        PublishedBudget("ucf-vggsound", "a2v", "dcid", 224, 1, 0, "ucf_vggsound.py vgga_ucfv"),
        PublishedBudget("ucf-vggsound", "v2a", "hdcid", 196, 1, 0, "ucf_vggsound_mlvq.py ucfv_vgga"),
        PublishedBudget("ucf-vggsound", "a2v", "hdcid", 224, 1, 1, "ucf_vggsound_mlvq.py vgga_ucfv"),
        *(
            PublishedBudget(p.task, p.direction, "fcid", p.channels, p.max_num, p.min_num,
                            f"{p.script} {p.dataset_name}", f"score {p.score}")
            for p in FCID_TOC_PRESETS.values()
        ),
    )
}


def published_budget(task: str, direction: str, method: str) -> PublishedBudget | None:
    """The published budget of a task, direction and method (None: the release has none)."""
    return PUBLISHED_BUDGETS.get((task, direction, method))
