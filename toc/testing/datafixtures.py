"""Tiny format-faithful data fixtures (reference-tasks §12) written under a test's data root.

Imported by loader, evaluation and synth tests and by benchmarks/fuzz.py. Every writer takes the data root
(the directory `--data-root` points at), writes the reference layout (§9) below it and returns
that root. Feature values are low-entropy (sample n, segment t -> n + 0.01*t) and h5 datasets are
gzip-compressed, so files stay at a few KB despite the real shapes.
"""

from __future__ import annotations

import csv
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

T = 10
AVE_DIR = "AVE-ECCV18-master/data"
EXTRACTOR_DIR = "feature_extractor/feature_extractor"

# The LLP / AVVP order (§2.1); loaders read the txt, so this only has to be self-consistent.
AVVP_CLASSES = [
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce",
    "Fire_alarm", "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle",
    "Vacuum_cleaner", "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter",
    "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
]
# §12 F-C: the §3.1 candidates without Car.
AVE_AVVP_CLASSES = [
    "Speech", "Dog", "Cat", "Frying_(food)", "Chainsaw", "Banjo", "Violin_fiddle", "Accordion",
    "Motorcycle", "Helicopter", "Acoustic_guitar", "Baby_cry_infant_cry",
]
UCF_CLASSES = [
    "PlayingGuitar", "PlayingCello", "PlayingFlute", "PlayingPiano", "PlayingSitar", "Skiing",
    "TableTennisShot", "Typing", "JumpRope", "Basketball", "FrisbeeCatch", "Bowling",
    "PlayingDrums", "PlayingViolin", "HorseRiding", "Rowing",
]
VGGSOUND_CLASSES = [
    "playing acoustic guitar", "playing cello", "playing flute", "playing piano",
    "playing sitar", "skiing", "playing table tennis", "typing on typewriter", "rope skipping",
    "basketball bounce", "frisbee catch", "bowling impact", "playing drum kit", "playing violin, fiddle",
    "horse clip-clop", "rowboat, canoe, kayak rowing",
]

# §12 F-B rows: (filename, onset, offset, event_labels).
AVVP_AUDIO_ROWS = [
    ("IgN7v8nWmx8_30_40", "0,5,0,6,9", "1,9,5,8,10",
     "Speech,Speech,Violin_fiddle,Violin_fiddle,Violin_fiddle"),
    ("aaaaaaaaaaa_0_10", "2", "5", "Dog"),
    ("bbbbbbbbbbb_10_20", "0,0", "10,3", "Car,Car"),
]
AVVP_VISUAL_ROWS = [
    ("IgN7v8nWmx8_30_40", "0,4", "10,6", "Violin_fiddle,Speech"),
    ("aaaaaaaaaaa_0_10", "0", "10", "Dog"),
]
# Audio lengths exercise pad-last (8 -> 10), exact (10) and truncation (12 -> 10).
AVVP_AUDIO_LENGTHS = {"IgN7v8nWmx8": 8, "aaaaaaaaaaa": 10, "bbbbbbbbbbb": 12}


def segment_values(n: int, steps: int, frame_shape: Sequence[int], dtype=np.float64) -> np.ndarray:
    """Sample n: every element of segment t equals n + 0.01*t."""
    values = n + 0.01 * np.arange(steps)
    shape = (steps, *frame_shape)
    return np.broadcast_to(values.reshape((steps,) + (1,) * len(frame_shape)), shape).astype(dtype)


def write_h5(path: Path, key: str, data, *, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data)
    with h5py.File(path, "a") as handle:
        if key in handle:
            del handle[key]
        if compress and data.ndim > 0 and data.size > 0:
            handle.create_dataset(key, data=data, compression="gzip", compression_opts=9)
        else:
            handle.create_dataset(key, data=data)
    return path


def write_feature_zip(directory: Path, key: str, payload, *, extra_member: bool = False,
                      raw: bytes | None = None) -> Path:
    """`<directory>/<key>.zip` holding `<key>.pkl` = pickle of `payload` (or the bytes `raw`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.zip"
    data = raw if raw is not None else pickle.dumps(payload)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if extra_member:
            archive.writestr("readme.txt", "not a feature; loaders must skip it")
        archive.writestr(f"{key}.pkl", data)
    return path


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], *,
                delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_avvp_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    return write_table(path, ("filename", "onset", "offset", "event_labels"), rows, delimiter="\t")


def ave_default_labels(n: int) -> np.ndarray:
    """§12 F-A labels for n = 5 (targets 3, 0, 27, 5, 12); row i -> class i % 28 beyond."""
    labels = np.zeros((n, T, 29), dtype=np.float64)
    labels[:, :, 28] = 1.0
    spec = {0: (3, range(2, 8)), 1: (0, range(10)), 2: (27, range(10)), 3: (5, range(9, 10)),
            4: (12, range(10))}
    for row in range(n):
        cls, segments = spec.get(row, (row % 28, range(10)))
        for t in segments:
            labels[row, t, :] = 0.0
            labels[row, t, cls] = 1.0
    return labels


def write_ave(root: Path, n: int = 5, *, labels: np.ndarray | None = None,
              train: Sequence[int] = (3, 1, 0), val: Sequence[int] = (2,),
              test: Sequence[int] = (4,), audio: np.ndarray | None = None,
              video: np.ndarray | None = None) -> Path:
    """F-A: AVE h5 files (features float64, labels [n,10,29], int64 order files)."""
    data = Path(root) / AVE_DIR
    if video is None:
        video = np.stack([segment_values(i, T, (7, 7, 512)) for i in range(n)])
    if audio is None:
        audio = np.stack([segment_values(i, T, (128,)) for i in range(n)])
    write_h5(data / "visual_feature.h5", "avadataset", video)
    write_h5(data / "audio_feature.h5", "avadataset", audio)
    write_h5(data / "labels.h5", "avadataset", ave_default_labels(n) if labels is None else labels)
    for name, order in (("train", train), ("val", val), ("test", test)):
        write_h5(data / f"{name}_order.h5", "order", np.asarray(order, dtype=np.int64))
    return Path(root)


def write_planted_ave(root: Path, n: int, n_classes: int, seed: int, n_train: int, n_val: int) -> Path:
    """AVE files whose clips carry their class's random pattern plus noise (class = row % n_classes),
    so heads can learn; a seeded permutation gives n_train / n_val / the rest as test."""
    rng = np.random.default_rng(seed)
    classes = np.arange(n) % n_classes
    labels = np.zeros((n, 10, 29))
    labels[np.arange(n), :, classes] = 1.0
    audio = rng.normal(size=(n_classes, 128))[classes][:, None] + 0.5 * rng.normal(size=(n, 10, 128))
    video = rng.normal(size=(n_classes, 7, 7, 512))[classes][:, None] + 0.5 * rng.normal(size=(n, 10, 7, 7, 512))
    order = rng.permutation(n)
    return write_ave(root, n, labels=labels, audio=audio, video=video, train=order[:n_train],
                     val=order[n_train : n_train + n_val], test=order[n_train + n_val :])


def write_avvp_features(root: Path, audio_lengths: Mapping[str, int], video_ids: Sequence[str],
                        *, first_value: int = 0) -> None:
    """AVVP zips: audio [T,128] (float32 for even positions, float64 else), video [10,7,7,512].

    The first audio zip carries an extra non-pkl member, which loaders must skip.
    """
    audio_dir = Path(root) / "AVVP/feature/audio/zip"
    video_dir = Path(root) / "AVVP/feature/video/zip"
    for i, (key, steps) in enumerate(audio_lengths.items()):
        dtype = np.float32 if i % 2 == 0 else np.float64
        write_feature_zip(audio_dir, key, segment_values(first_value + i, steps, (128,), dtype),
                          extra_member=i == 0)
    for i, key in enumerate(video_ids):
        dtype = np.float64 if i % 2 == 0 else np.float32
        write_feature_zip(video_dir, key, segment_values(first_value + i, T, (7, 7, 512), dtype))


def write_avvp(root: Path, *, audio_rows=AVVP_AUDIO_ROWS, visual_rows=AVVP_VISUAL_ROWS,
               categories: Sequence[str] = tuple(AVVP_CLASSES),
               audio_lengths: Mapping[str, int] | None = None) -> Path:
    """F-B: AVVP class list, the two combined TSVs and the zips of every listed video."""
    root = Path(root)
    data = root / "AVVP/data"
    write_lines(data / "AVVP_Categories.txt", categories)
    write_avvp_csv(data / "AVVP_eval_audio_checked_combined.csv", audio_rows)
    write_avvp_csv(data / "AVVP_eval_visual_checked_combined.csv", visual_rows)
    if audio_lengths is None:
        audio_lengths = {r[0][:11]: AVVP_AUDIO_LENGTHS.get(r[0][:11], T) for r in audio_rows}
    write_avvp_features(root, audio_lengths, [r[0][:11] for r in visual_rows])
    return root


AVE_AVVP_AUDIO_ROWS = [
    ("ccccccccccc_0_10", "0,3", "4,10", "Speech,Banjo"),
    ("ddddddddddd_5_15", "1", "2", "Cat"),
]
AVE_AVVP_VISUAL_ROWS = [
    ("ccccccccccc_0_10", "0", "10", "Banjo"),
    ("eeeeeeeeeee_0_10", "2,6", "7,8", "Dog,Accordion"),
]


def write_ave_avvp(root: Path) -> Path:
    """F-C: reuses (writes if absent) F-A features; 12-class labels/order, TSVs and AVVP zips."""
    root = Path(root)
    if not (root / AVE_DIR / "visual_feature.h5").exists():
        write_ave(root)
    n = 5
    labels = np.zeros((n, T, 13), dtype=np.float64)
    labels[:, :, 12] = 1.0
    labels[0, 2:8, 12] = 0.0
    labels[0, 2:8, 4] = 1.0  # Chainsaw in segments 2..7
    labels[2, :, 12] = 0.0
    labels[2, :, 7] = 1.0  # Accordion everywhere
    data = root / "AVE_AVVP"
    write_h5(data / "ave_avvp_labels.h5", "avadataset", labels)
    write_h5(data / "ave_avvp_order.h5", "order", np.array([0, 2], dtype=np.int64))
    write_lines(data / "AVE_AVVP_Categories.txt", AVE_AVVP_CLASSES)
    write_avvp_csv(data / "AVE_AVVP_eval_audio_checked_combined.csv", AVE_AVVP_AUDIO_ROWS)
    write_avvp_csv(data / "AVE_AVVP_eval_visual_checked_combined.csv", AVE_AVVP_VISUAL_ROWS)
    write_avvp_features(root, {"ccccccccccc": 9, "ddddddddddd": 11},
                        ["ccccccccccc", "eeeeeeeeeee"], first_value=20)
    return root


UCF_ROWS = [
    ("PlayingGuitar", "v_PlayingGuitar_g02_c03"),
    ("Typing", "v_Typing_g01_c01"),
    ("Skiing", "v_Skiing_g05_c02"),
]
VGGSOUND_ROWS = [
    ("playing acoustic guitar", "ggggggggggg", "train"),
    ("typing on typewriter", "hhhhhhhhhhh", "val"),
    ("playing violin, fiddle", "iiiiiiiiiii", "test"),
]
UCF_LENGTHS = {"v_PlayingGuitar_g02_c03": 7, "v_Typing_g01_c01": 12, "v_Skiing_g05_c02": 10}
VGGSOUND_LENGTHS = {"ggggggggggg": 9, "hhhhhhhhhhh": 10, "iiiiiiiiiii": 10}


def write_ucf_vggsound(root: Path) -> Path:
    """F-D: aligned 16-class lists, both CSVs, UCF video zips (T=7,12,10), VGGSound audio zips."""
    root = Path(root)
    ext = root / EXTRACTOR_DIR
    write_lines(ext / "UCF101sameVGGSound.txt", UCF_CLASSES)
    write_lines(ext / "VGGSoundsameUCF101.txt", VGGSOUND_CLASSES)
    write_table(ext / "ucf2vggsound.csv", ("category", "video_id"), UCF_ROWS)
    write_table(ext / "vggsound2ucf.csv", ("category", "video_id", "split"), VGGSOUND_ROWS)
    for i, (key, steps) in enumerate(UCF_LENGTHS.items()):
        dtype = np.float32 if i % 2 == 0 else np.float64
        write_feature_zip(root / "UCF101/feature/video/zip", key,
                          segment_values(30 + i, steps, (7, 7, 512), dtype), extra_member=i == 1)
    for i, (key, steps) in enumerate(VGGSOUND_LENGTHS.items()):
        dtype = np.float64 if i % 2 == 0 else np.float32
        write_feature_zip(root / "vggsound40k/feature/audio/zip", key,
                          segment_values(40 + i, steps, (128,), dtype))
    return root


PRETRAIN_ROWS = [
    ("dog barking", "ppppppppppp", "val"),
    ("cat meowing", "qqqqqqqqqqq", "train"),
    ("dog barking", "rrrrrrrrrrr", "test"),
    ("cat meowing", "sssssssssss", "train"),
]
PRETRAIN_CATEGORIES = ["cat meowing", "dog barking"]


def write_text_features(path: Path, names: Sequence[str], width: int = 8) -> Path:
    """Text-feature h5: `labels` UTF-8 strings, `features` [K,10,W] float32 (k + 0.1*t + 0.001*w)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k = len(names)
    features = (np.arange(k)[:, None, None] + 0.1 * np.arange(T)[None, :, None]
                + 0.001 * np.arange(width)[None, None, :]).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("labels", data=np.array([n.encode("utf-8") for n in names]),
                              dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("features", data=features)
    return path


def write_pretrain(root: Path, rows: Sequence[Sequence[str]] = PRETRAIN_ROWS, *,
                   categories: Sequence[str] = tuple(PRETRAIN_CATEGORIES), text_width: int = 8,
                   audio_lengths: Mapping[str, int] | None = None) -> Path:
    """F-P: 40k CSV (category,video_id,split), per-video audio/video zips, text-feature h5.

    The text h5 goes to the default layout path `vggsound40k/data/text_features.h5`.
    """
    root = Path(root)
    ext = root / EXTRACTOR_DIR
    write_table(ext / "vggsound-avel40k.csv", ("category", "video_id", "split"), rows)
    write_lines(ext / "VggsoundAVEL40kCategories.txt", categories)
    write_text_features(root / "vggsound40k/data/text_features.h5", categories, text_width)
    lengths = dict(audio_lengths or {})
    for i, row in enumerate(rows):
        key = row[1]
        steps = lengths.get(key, 7 if i == 0 else T)
        dtype = np.float32 if i % 2 == 0 else np.float64
        write_feature_zip(root / "vggsound40k/feature/audio/zip", key,
                          segment_values(50 + i, steps, (128,), dtype))
        write_feature_zip(root / "vggsound40k/feature/video/zip", key,
                          segment_values(50 + i, T, (7, 7, 512), dtype))
    return root
