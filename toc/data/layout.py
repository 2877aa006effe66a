"""Where each task's files are: the reference layout under a data root, overridable from TOML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cmg_base.inputs import expand_path
from toc.data.files import read_toml
from toc.data.paired import FILE_NAME as PAIRED_FILE
from toc.data.paired import FOLDER_NAME as PAIRED_FOLDER
from toc.errors import ConfigError


@dataclass(frozen=True)
class AvePaths:
    """AVE: h5 features and labels under `AVE-ECCV18-master/data/`."""

    visual_features: Path
    audio_features: Path
    labels: Path
    train_order: Path
    val_order: Path
    test_order: Path


@dataclass(frozen=True)
class AvvpPaths:
    """AVVP: class list, the two combined TSVs, per-video feature zips."""

    categories: Path
    audio_csv: Path
    visual_csv: Path
    audio_dir: Path
    video_dir: Path


@dataclass(frozen=True)
class AveAvvpPaths:
    """AVE→AVVP: AVE features with 12-class labels; AVVP features with 12-class TSVs."""

    visual_features: Path
    audio_features: Path
    labels: Path
    order: Path
    categories: Path
    audio_csv: Path
    visual_csv: Path
    audio_dir: Path
    video_dir: Path


@dataclass(frozen=True)
class UcfVggsoundPaths:
    """UCF101↔VGGSound: the aligned 16-class lists, two CSVs, two zip directories."""

    ucf_classes: Path
    vggsound_classes: Path
    ucf_csv: Path
    vggsound_csv: Path
    ucf_video_dir: Path
    vggsound_audio_dir: Path


@dataclass(frozen=True)
class PretrainPaths:
    """VGGSound-AVEL pretraining plus the precomputed text-feature h5 (not in the layout)."""

    csv: Path
    audio_dir: Path
    video_dir: Path
    text_features: Path


@dataclass(frozen=True)
class PairedPaths:
    """Own data (toc.data.paired): one h5 file, or a folder of .npy files, of paired features."""

    features: Path


# The retrieval sets of the FCID release's loaders (toc.data.retrieval). The caption files and
# the text-feature h5 files (captions -> word vectors; no loader makes them) have no published
# place: the defaults below for those are ours.


@dataclass(frozen=True)
class ClothoPaths:
    """Clotho v2.1 (audio-text): the captions CSV and per-clip audio zips."""

    captions_csv: Path
    audio_dir: Path
    text_features: Path


@dataclass(frozen=True)
class MscocoPaths:
    """MSCOCO (image-text): the annotations JSON and per-image feature zips."""

    annotations: Path
    image_dir: Path
    text_features: Path


@dataclass(frozen=True)
class FlickrSoundNetPaths:
    """FlickrSoundNet (audio-image): the file list and audio / image zips of the same stems."""

    csv: Path
    audio_dir: Path
    image_dir: Path


@dataclass(frozen=True)
class MsvdPaths:
    """MSVD (video-text): one row per caption, per-video feature zips."""

    captions_csv: Path
    video_dir: Path
    text_features: Path


@dataclass(frozen=True)
class Valor32kPaths:
    """VALOR-32K (video-audio-text): the annotation folder (one JSON per split) and zips."""

    annotations_dir: Path
    video_dir: Path
    audio_dir: Path
    text_features: Path


TaskPaths = (
    AvePaths | AvvpPaths | AveAvvpPaths | UcfVggsoundPaths | PretrainPaths | PairedPaths
    | ClothoPaths | MscocoPaths | FlickrSoundNetPaths | MsvdPaths | Valor32kPaths
)

_AVE = "AVE-ECCV18-master/data"
_EXTRACTOR = "feature_extractor/feature_extractor"

# Per section: field -> candidate paths relative to the data root; the first existing one wins,
# else the first (so a missing file is reported under its reference name).
_DEFAULTS: dict[str, tuple[type, dict[str, tuple[str, ...]]]] = {
    "ave": (AvePaths, {
        "visual_features": (f"{_AVE}/visual_feature.h5",),
        "audio_features": (f"{_AVE}/audio_feature.h5",),
        "labels": (f"{_AVE}/labels.h5",),
        "train_order": (f"{_AVE}/train_order.h5",),
        "val_order": (f"{_AVE}/val_order.h5",),
        "test_order": (f"{_AVE}/test_order.h5",),
    }),
    "avvp": (AvvpPaths, {
        "categories": ("AVVP/data/AVVP_Categories.txt",),
        "audio_csv": ("AVVP/data/AVVP_eval_audio_checked_combined.csv",),
        "visual_csv": ("AVVP/data/AVVP_eval_visual_checked_combined.csv",),
        "audio_dir": ("AVVP/feature/audio/zip",),
        "video_dir": ("AVVP/feature/video/zip",),
    }),
    "ave-avvp": (AveAvvpPaths, {
        "visual_features": (f"{_AVE}/visual_feature.h5",),
        "audio_features": (f"{_AVE}/audio_feature.h5",),
        "labels": ("AVE_AVVP/ave_avvp_labels.h5",),
        "order": ("AVE_AVVP/ave_avvp_order.h5",),
        "categories": ("AVE_AVVP/AVE_AVVP_Categories.txt",),
        "audio_csv": ("AVE_AVVP/AVE_AVVP_eval_audio_checked_combined.csv",),
        "visual_csv": ("AVE_AVVP/AVE_AVVP_eval_visual_checked_combined.csv",),
        "audio_dir": ("AVVP/feature/audio/zip",),
        "video_dir": ("AVVP/feature/video/zip",),
    }),
    "ucf-vggsound": (UcfVggsoundPaths, {
        "ucf_classes": (f"{_EXTRACTOR}/UCF101sameVGGSound.txt",),
        "vggsound_classes": (f"{_EXTRACTOR}/VGGSoundsameUCF101.txt",),
        "ucf_csv": (f"{_EXTRACTOR}/ucf2vggsound.csv",),
        "vggsound_csv": (f"{_EXTRACTOR}/vggsound2ucf.csv",),
        "ucf_video_dir": ("UCF101/feature/video/zip",),
        "vggsound_audio_dir": ("vggsound40k/feature/audio/zip",),
    }),
    "pretrain": (PretrainPaths, {
        # The README's corrected 40k CSV goes to vggsound40k/data/; prefer it when present.
        "csv": ("vggsound40k/data/vggsound-avel40k.csv", f"{_EXTRACTOR}/vggsound-avel40k.csv"),
        "audio_dir": ("vggsound40k/feature/audio/zip",),
        "video_dir": ("vggsound40k/feature/video/zip",),
        "text_features": ("vggsound40k/data/text_features.h5",),
    }),
    # Own data for `toc train` and `toc eval paired`: DIR/paired.h5, else the folder DIR/paired/.
    "paired": (PairedPaths, {"features": (PAIRED_FILE, PAIRED_FOLDER)}),
    "clotho": (ClothoPaths, {
        "captions_csv": ("clotho2.1/clotho_captions_evaluation.csv",),
        "audio_dir": ("clotho2.1/feature/zip",),
        "text_features": ("clotho2.1/text_features.h5",),
    }),
    "mscoco": (MscocoPaths, {
        "annotations": ("MSCOCO/val_part_1.json",),
        "image_dir": ("MSCOCO/feature/zip",),
        "text_features": ("MSCOCO/text_features.h5",),
    }),
    "flickrsoundnet": (FlickrSoundNetPaths, {
        "csv": ("FlickrSoundNet/Data/test.csv",),
        "audio_dir": ("FlickrSoundNet/Data/feature/audio/zip",),
        "image_dir": ("FlickrSoundNet/Data/feature/image/zip",),
    }),
    "msvd": (MsvdPaths, {
        "captions_csv": ("MSVD/MSVD/captions.csv",),
        "video_dir": ("MSVD/MSVD/feature/zip",),
        "text_features": ("MSVD/text_features.h5",),
    }),
    "valor32k": (Valor32kPaths, {
        "annotations_dir": ("VALOR32K/VALOR-32K-annotations",),
        "video_dir": ("VALOR32K/feature/video/zip",),
        "audio_dir": ("VALOR32K/feature/audio/zip",),
        "text_features": ("VALOR32K/text_features.h5",),
    }),
}

# A field left unset in a section falls back to the same file set in another section, so the
# shared AVE h5 files and AVVP zip directories are configured once.
_INHERIT: dict[str, dict[str, tuple[str, str]]] = {
    "ave-avvp": {
        "visual_features": ("ave", "visual_features"),
        "audio_features": ("ave", "audio_features"),
        "audio_dir": ("avvp", "audio_dir"),
        "video_dir": ("avvp", "video_dir"),
    },
    "pretrain": {"audio_dir": ("ucf-vggsound", "vggsound_audio_dir")},
}

SECTIONS = tuple(_DEFAULTS)

# Files of the reference layout that the toolkit writes (corpora) but never reads.
_WRITTEN_ONLY = {
    "pretrain": {
        "categories": f"{_EXTRACTOR}/VggsoundAVEL40kCategories.txt",
        "prompts": f"{_EXTRACTOR}/vggsoundCategories2Prompts.csv",
        "label_dir": "vggsound40k/feature/label/zip",
    },
}


def relative_path(section: str, name: str) -> str:
    """Where file `name` of `section` lies under a data root in the reference layout.

    Readers and the corpus writers (toc.corpora) both take paths from here. Where the readers
    accept several places (the corrected pretraining CSV), this is the original one, the last.
    """
    if name in _WRITTEN_ONLY.get(section, {}):
        return _WRITTEN_ONLY[section][name]
    return _DEFAULTS[section][1][name][-1]


@dataclass(frozen=True)
class DataConfig:
    """A parsed config file: optional data root and per-section path overrides (absolute)."""

    source: Path | None
    data_root: Path | None
    sections: dict[str, dict[str, Path]]


def load_config(path: str | Path) -> DataConfig:
    """Parse a TOML data config; relative paths are taken relative to the file's directory."""
    path = Path(path)
    raw = read_toml(path)
    base = path.resolve().parent

    def as_path(value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value or "\0" in value:
            raise ConfigError(f"{path}: key '{where}' must be a non-empty string path")
        candidate = expand_path(value, what=f"key '{where}' of {path}", error=ConfigError)
        return candidate if candidate.is_absolute() else base / candidate

    data_root = None
    sections: dict[str, dict[str, Path]] = {}
    for key, value in raw.items():
        if key == "data_root":
            data_root = as_path(value, key)
        elif key in _DEFAULTS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{key}' must be a table ([{key}])")
            allowed = _DEFAULTS[key][1]
            section: dict[str, Path] = {}
            for name, item in value.items():
                if name not in allowed:
                    raise ConfigError(
                        f"{path}: unknown key '{key}.{name}' (expected one of {sorted(allowed)})"
                    )
                section[name] = as_path(item, f"{key}.{name}")
            sections[key] = section
        else:
            raise ConfigError(
                f"{path}: unknown key '{key}' (expected data_root or one of {list(SECTIONS)})"
            )
    return DataConfig(source=path, data_root=data_root, sections=sections)


def resolve_paths(
    section: str,
    *,
    data_root: str | Path | None = None,
    config: str | Path | DataConfig | None = None,
    overrides: Mapping[str, str | Path | None] | None = None,
) -> TaskPaths:
    """Resolve every path of `section` (a task name or "pretrain").

    Precedence: `overrides` (command-line options; None entries ignored) > the config file's
    section > a section it inherits from > the reference layout under `data_root`
    (the argument, else the config file's `data_root`).
    """
    if section not in _DEFAULTS:
        raise ConfigError(f"unknown data section '{section}' (expected one of {list(SECTIONS)})")
    cls, defaults = _DEFAULTS[section]
    parsed = load_config(config) if isinstance(config, (str, Path)) else config
    root = expand_path(data_root, what="data root", error=ConfigError) if data_root is not None else (
        parsed.data_root if parsed is not None else None
    )
    given = {k: expand_path(v, what=k, error=ConfigError) for k, v in (overrides or {}).items() if v is not None}
    for name in given:
        if name not in defaults:
            raise ConfigError(f"unknown path '{name}' for '{section}' (expected {sorted(defaults)})")
    from_config = parsed.sections.get(section, {}) if parsed is not None else {}
    resolved: dict[str, Path] = {}
    for field in fields(cls):
        name = field.name
        if name in given:
            resolved[name] = given[name]
            continue
        if name in from_config:
            resolved[name] = from_config[name]
            continue
        parent = _INHERIT.get(section, {}).get(name)
        if parent is not None and parsed is not None and parent[1] in parsed.sections.get(parent[0], {}):
            resolved[name] = parsed.sections[parent[0]][parent[1]]
            continue
        if root is None:
            raise ConfigError(
                f"no path for '{section}.{name}': give {{}} or set it in a config file",
                settings=("data_root",),
            )
        candidates = [root / rel for rel in defaults[name]]
        resolved[name] = next((c for c in candidates if c.exists()), candidates[0])
    return cls(**resolved)
