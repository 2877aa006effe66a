"""Which corpus a training request names: own paired features (toc.data.paired) or the published
VGGSound-AVEL pretraining layout (toc.data.vggsound), as the trainer's data protocol."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cmg_base.errors import literal
from hdcid.training import PretrainData
from toc.data.layout import resolve_paths
from toc.data.paired import PairedPretraining, load_paired
from toc.data.vggsound import PairedClips, load_pretrain
from toc.errors import SettingsError

# The published layout's paths, each a setting of its own (all four, or a data root).
REFERENCE_SETTINGS = ("csv", "audio_dir", "video_dir", "text_features")


def open_pretraining(
    *,
    data_root: str | Path | None = None,
    paired: str | Path | None = None,
    paths: Mapping[str, str | Path | None] | None = None,
) -> PretrainData:
    """The pretraining corpus of a request.

    `paired`: own data (an h5 file or a folder of .npy files). `paths`: the published layout's
    files by name (REFERENCE_SETTINGS; None = not given), over those under `data_root`. A data
    root alone holds either layout: own data (`paired.h5` or `paired/`) or the published one —
    both at once is ambiguous and refused.
    """
    given = {name: value for name, value in (paths or {}).items() if value is not None}
    if paired is not None:
        if given or data_root is not None:
            others = tuple(given) or ("data_root",)
            raise SettingsError(
                "{} names own data; " + " / ".join(["{}"] * len(others)) + " name another corpus: give one",
                settings=("paired", *others),
            )
        return PairedPretraining(load_paired(paired))
    if data_root is None and set(given) != set(REFERENCE_SETTINGS):
        raise SettingsError(
            "give {} DIR, {} FILE_OR_DIR (own data), or all of {}, {}, {} and {}",
            settings=("data_root", "paired", *REFERENCE_SETTINGS),
        )
    if data_root is not None and not given:
        own = resolve_paths("paired", data_root=data_root).features
        reference = resolve_paths("pretrain", data_root=data_root).csv
        if own.exists() and reference.exists():
            raise SettingsError(
                f"{literal(data_root)} holds own data ({literal(own.name)}) and the published layout "
                f"({literal(reference)}); name one with {{}} or {{}}",
                settings=("paired", "csv"),
            )
        if own.exists():
            return PairedPretraining(load_paired(own))
    return PairedClips(load_pretrain(resolve_paths("pretrain", data_root=data_root, overrides=given)))
