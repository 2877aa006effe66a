"""The evaluation loop on in-memory tasks: variants, heads, protocols, planted signal, cache reuse."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
from evalfixtures import FakeCodeSource, clip_task, codebooks, segment_task, single_thread

from toc.codebook.selection import (
    LevelSelection,
    SelectionFile,
    TocSettings,
    select_channels,
    select_levels,
)
from toc.errors import ConfigError, SettingsError
from toc.eval.cache import CodeCache
from toc.eval.loop import EvalRequest, run_evaluation
from toc.eval.overlap import PretrainingList
from toc.eval.protocols import epochs_to_train, plan_direction
from toc.eval.records import ResultRecord, unit_ids_digest
from toc.eval.variants import default_variants, get_variant, resolve_view


def selection_file(levels: dict[int, tuple[int, ...]], width: int = 8) -> SelectionFile:
    """A selection artifact naming these channels per level (scores are irrelevant here)."""
    return SelectionFile(
        checkpoint_path="ckpt.pt", checkpoint_sha256="", family="hdcid-avt", parameters={},
        levels=tuple(LevelSelection(level, (16, width), list(idx), [0.0 for _ in idx]) for level, idx in levels.items()),
    )


SELECTION = selection_file({0: (3, 1, 7, 5), 1: (0, 2, 4)})


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def run(data, source=None, cache_dir=None, **kwargs):
    source = source or FakeCodeSource(codebooks())
    cache = CodeCache(source, cache_dir)
    defaults = dict(variants=["dcid"], heads=("prototype",), epochs=4, batch_size=16)
    records = list(run_evaluation(data, cache, EvalRequest(**{**defaults, **kwargs})))
    return records, cache, source


def test_planted_signal_prototype_beats_chance_widely():
    records, _, _ = run(clip_task(n_per_class=15, n_classes=4, signal=0.6), variants=["dcid", "hdcid"])
    assert len(records) == 4  # 2 directions × 2 variants
    for record in records:
        assert record.metrics["accuracy"] >= 80.0, record  # chance is 25 %
        assert record.same_modality["accuracy"] >= 80.0


def test_no_signal_stays_near_chance():
    records, _, _ = run(clip_task(n_per_class=15, n_classes=4, signal=0.0))
    assert all(r.metrics["accuracy"] < 60.0 for r in records)


def test_prototype_accuracy_equals_independent_numpy_computation():
    data = clip_task(n_per_class=10, n_classes=5, signal=0.3, seed=4)
    source = FakeCodeSource(codebooks())
    (record,), _, _ = run(data, source, variants=["dcid+toc"], directions=["v2a"], selection=SELECTION)
    # Independent: codes → quantized (float32 encoder rows, as float64) → channels → prototypes.
    cb = source.codebooks("float32")[0][:, [3, 1, 7, 5]]
    split = data.predefined_splits["mem/video"]
    video = data.sets["mem/video"].read(np.arange(50))[..., 0].astype(int)
    audio = data.sets["mem/audio"].read(np.arange(50))[..., 0].astype(int)
    labels = data.sets["mem/video"].labels
    train_f = cb[video[split["train"]]].mean(axis=1)
    test_f = cb[audio[split["test"]]].mean(axis=1)
    protos = np.stack([train_f[labels[split["train"]] == c].mean(axis=0) for c in range(5)])
    cos = (test_f @ protos.T) / np.outer(np.linalg.norm(test_f, axis=1), np.linalg.norm(protos, axis=1))
    expected = 100.0 * np.sum(cos.argmax(axis=1) == labels[split["test"]]) / len(split["test"])
    assert record.metrics["accuracy"] == expected
    assert record.n_train == len(split["train"]) and record.n_eval == len(split["test"])
    assert record.channels == [[3, 1, 7, 5]]


@pytest.mark.parametrize("protocol", ["strict", "reference"])
@pytest.mark.parametrize("head", ["prototype", "linear"])
def test_clip_task_all_variants(protocol, head):
    records, cache, source = run(
        clip_task(), variants=["dcid", "dcid+toc", "hdcid", "hdcid+toc"], heads=(head,),
        protocol=protocol, selection=SELECTION, seeds=(0, 1),
    )
    assert len(records) == 2 * 4 * 2
    for r in records:
        assert set(r.metrics) == {"accuracy"} and 0 <= r.metrics["accuracy"] <= 100
        assert r.protocol == protocol and r.head == head and r.checkpoint_sha256 == source.sha256
        json.dumps(r.to_json())
    widths = {r.variant: sum(len(c) for c in r.channels) for r in records}
    assert widths == {"dcid": 12, "dcid+toc": 4, "hdcid": 24, "hdcid+toc": 7}
    eval_mode_calls = [c for c in source.calls if c[2] is None]
    assert len(eval_mode_calls) == 2  # each set encoded once for every variant, head and seed
    dropout_calls = [c for c in source.calls if c[2] is not None]
    assert len(dropout_calls) == (4 if protocol == "reference" else 0)  # per (train set, seed)
    if protocol == "reference":
        assert all(r.split.startswith("reference: train split") for r in records)
        assert all(r.n_eval == r.n_train for r in records)  # Q5: evaluated on the train split


@pytest.mark.parametrize("protocol", ["strict", "reference"])
@pytest.mark.parametrize("head", ["prototype", "linear"])
def test_segment_task(protocol, head):
    records, _, _ = run(segment_task(), variants=["dcid", "hdcid+toc"], heads=(head,), protocol=protocol, selection=SELECTION)
    assert len(records) == 4
    for r in records:
        assert {"precision", "recall", "f1", "macro_f1"} <= set(r.metrics)
        assert all(0 <= v <= 100 for v in r.metrics.values())
    if head == "prototype":
        assert all(r.metrics["f1"] > 50 for r in records)  # planted per segment


def test_reruns_identical_and_seeds_differ():
    data = clip_task(signal=0.3)
    first, _, _ = run(data, heads=("linear",), seeds=(0, 1), directions=["v2a"])
    second, _, _ = run(data, heads=("linear",), seeds=(0, 1), directions=["v2a"])
    strip = [{k: v for k, v in r.to_json().items() if k != "seconds"} for r in first]
    assert strip == [{k: v for k, v in r.to_json().items() if k != "seconds"} for r in second]
    # Another seed is another head: its per-clip outcomes differ somewhere.
    seed0, seed1 = first
    assert (seed0.seed, seed1.seed) == (0, 1)
    assert seed0.eval_parts != seed1.eval_parts or seed0.val_parts != seed1.val_parts
    # The prototype head has no seed: every seed gives the same outcomes (n_eff = 1).
    proto, _, _ = run(data, heads=("prototype",), seeds=(0, 1), directions=["v2a"])
    assert proto[0].eval_parts == proto[1].eval_parts


@pytest.mark.parametrize("head", ["prototype", "linear"])
def test_records_carry_per_unit_outcomes_that_add_up_to_their_metrics(head):
    clip, _, _ = run(clip_task(signal=0.4), heads=(head,), directions=["v2a"])
    (r,) = clip
    assert r.unit == "clip" and r.parts_metrics == ["accuracy"] and len(r.eval_parts) == r.n_eval
    assert r.metrics["accuracy"] == pytest.approx(100 * np.mean(r.eval_parts), abs=1e-12)
    # val_parts are the outcomes at the selected epoch: the numbers epoch selection saw.
    assert r.val_metrics["accuracy"] == pytest.approx(100 * np.mean(r.val_parts), abs=1e-12)
    assert r.val_split == "validation" and r.eval_units_sha256 != r.val_units_sha256
    data = clip_task(signal=0.4)
    ids = [data.sets["mem/audio"].ids[i] for i in data.predefined_splits["mem/audio"]["test"]]
    assert r.eval_units_sha256 == unit_ids_digest(ids)
    seg, _, _ = run(segment_task(), heads=(head,), directions=["v2a"])
    (s,) = seg
    counts = np.array(s.eval_parts)
    assert s.unit == "video" and counts.shape == (s.n_eval, 3)
    assert s.metrics["f1"] == pytest.approx(200 * counts[:, 0].sum() / (counts[:, 1].sum() + counts[:, 2].sum()))
    assert s.metrics["precision"] == pytest.approx(100 * counts[:, 0].sum() / counts[:, 1].sum())
    val = np.array(s.val_parts)
    assert s.val_metrics["f1"] == pytest.approx(200 * val[:, 0].sum() / (val[:, 1].sum() + val[:, 2].sum()))
    # v2a predicts audio events: the LLP audio scores are the means of the per-video scores.
    for key in ("llp_segment_audio", "llp_event_audio"):
        assert s.metrics[key] == pytest.approx(100 * np.mean(s.llp_per_video[key]))
    assert "llp_segment_visual" not in s.metrics
    json.dumps(s.to_json())
    roundtrip = ResultRecord.from_json(json.loads(json.dumps(s.to_json())), "x:1")
    assert roundtrip.eval_parts == s.eval_parts and roundtrip.llp_per_video == s.llp_per_video


def test_both_directions_give_the_audio_visual_llp_scores():
    records, _, _ = run(segment_task(n_videos=40), variants=["dcid"], seeds=(0,))
    assert {r.direction for r in records} == {"v2a", "a2v"}
    v2a, a2v = sorted(records, key=lambda r: r.direction != "v2a")
    assert v2a.llp_both_directions == a2v.llp_both_directions
    both = v2a.llp_both_directions
    assert both["n_videos"] > 0
    assert set(both["metrics"]) == {
        "llp_segment_av", "llp_segment_type_at_av", "llp_segment_event_at_av",
        "llp_event_av", "llp_event_type_at_av", "llp_event_event_at_av",
    }
    one, _, _ = run(segment_task(n_videos=40), variants=["dcid"], seeds=(0,), directions=["v2a"])
    assert one[0].llp_both_directions is None


def test_split_seeds_give_one_split_each_and_predefined_splits_run_once():
    records, _, _ = run(segment_task(n_videos=40), directions=["v2a"], split_seeds=(0, 1, 2))
    assert [r.split_seed for r in records] == [0, 1, 2]
    assert len({r.eval_units_sha256 for r in records}) == 3
    clip, _, _ = run(clip_task(), directions=["v2a"], split_seeds=(0, 1))
    assert len(clip) == 1 and clip[0].split_seed is None and clip[0].split == "predefined"
    with pytest.raises(SettingsError):
        EvalRequest(variants=["dcid"], split_seeds=(1, 1))


def test_evaluated_ids_in_the_pretraining_list_are_reported_or_excluded():
    data = segment_task(n_videos=40)
    plan = plan_direction(data, "v2a", "strict")
    evaluated = [data.sets["seg/audio"].ids[i] for i in plan.evaluate.rows]
    listed = PretrainingList.from_ids(evaluated[:3] + ["not-a-video"], "/x/vggsound-avel40k.csv")
    (reported,), _, _ = run(data, directions=["v2a"], pretraining=listed)
    assert reported.pretrain_overlap["in_pretraining"] == 3 and reported.n_eval == len(evaluated)
    assert reported.pretrain_overlap["pretraining_list"] == "vggsound-avel40k.csv"
    assert any("3 of" in n and "not excluded" in n for n in reported.notes)
    exclude = PretrainingList(listed.ids, listed.source, "exclude")
    (excluded,), _, _ = run(data, directions=["v2a"], pretraining=exclude)
    assert excluded.n_eval == len(evaluated) - 3 and excluded.pretrain_overlap["excluded"] == 3
    everything = PretrainingList.from_ids(evaluated, "all.csv", "exclude")
    with pytest.raises(ConfigError, match="nothing is left to evaluate"):
        run(data, directions=["v2a"], pretraining=everything)
    # Row-number ids cannot be matched; the reference protocol is not checked at all.
    rows = clip_task()
    rows.sets["mem/audio"] = replace(rows.sets["mem/audio"], id_kind="row")
    (clip,), _, _ = run(rows, directions=["v2a"], pretraining=listed)
    assert clip.pretrain_overlap == {"checked": False, "reason": "mem/audio ids are row numbers, not video ids"}
    (ref,), _, _ = run(data, directions=["v2a"], pretraining=listed, protocol="reference")
    assert ref.pretrain_overlap is None


@pytest.mark.parametrize("task", ["clip", "segment"])
def test_scrambling_the_evaluated_clips_moves_neither_the_epoch_nor_validation(task):
    # Strict protocol: the evaluated rows (codes and labels) must not reach training or epoch
    # selection. Scramble them and everything but the evaluation metrics stays put.
    data = clip_task(signal=0.5) if task == "clip" else segment_task(n_videos=40)
    plan = plan_direction(data, "v2a", "strict")
    name = plan.evaluate.set_name
    original = data.sets[name]
    features = original.read(np.arange(len(original)))
    labels = np.array(original.labels)
    rng = np.random.default_rng(11)
    rows = plan.evaluate.rows
    features[rows] = rng.integers(0, 24, features[rows].shape)
    labels[rows] = labels[rng.permutation(rows)]
    scrambled = replace(
        data, sets={**data.sets, name: replace(original, labels=labels, read=lambda r: features[np.asarray(r)])}
    )
    kwargs = dict(heads=("linear",), directions=["v2a"], seeds=(0, 1), epochs=6)
    before, _, _ = run(data, **kwargs)
    after, _, _ = run(scrambled, **kwargs)
    for b, a in zip(before, after, strict=True):
        assert (a.best_epoch, a.val_metrics, a.val_parts) == (b.best_epoch, b.val_metrics, b.val_parts)
        assert a.same_modality == b.same_modality
    assert any(a.eval_parts != b.eval_parts for a, b in zip(before, after, strict=True))


def test_strict_video_level_split_holds_out_evaluated_videos():
    data = segment_task(n_videos=40)
    plan = plan_direction(data, "v2a", "strict", split_seed=3)
    ids = lambda rows: {data.sets[rows.set_name].ids[i] for i in rows.rows}  # noqa: E731
    assert not (ids(plan.train) | ids(plan.select)) & ids(plan.evaluate)
    assert ids(plan.same_modality) == ids(plan.evaluate)
    assert plan.select.set_name == plan.train.set_name and len(plan.select) > 0
    again = plan_direction(data, "v2a", "strict", split_seed=3)
    np.testing.assert_array_equal(again.evaluate.rows, plan.evaluate.rows)
    other = plan_direction(data, "v2a", "strict", split_seed=4)
    assert not np.array_equal(other.evaluate.rows, plan.evaluate.rows)
    reference = plan_direction(data, "v2a", "reference")
    assert len(reference.evaluate) == 40 and reference.select is reference.evaluate


def test_strict_predefined_split_uses_test_and_val():
    data = clip_task()
    plan = plan_direction(data, "a2v", "strict")
    split = data.predefined_splits["mem/audio"]
    np.testing.assert_array_equal(plan.train.rows, split["train"])
    np.testing.assert_array_equal(plan.select.rows, split["val"])
    np.testing.assert_array_equal(plan.evaluate.rows, split["test"])
    assert plan.train.set_name == "mem/audio" and plan.evaluate.set_name == "mem/video"


def test_reference_epochs_quirk():
    assert epochs_to_train("strict", 50, 4) == 50
    assert epochs_to_train("reference", 30, 4) == 25
    with pytest.raises(ConfigError):
        epochs_to_train("reference", 3, 4)
    records, _, _ = run(clip_task(), heads=("linear",), protocol="reference", epochs=6, directions=["v2a"])
    assert records[0].epochs_trained == 3  # 6 - checkpoint epoch 2 - 1


def test_linear_head_learns_planted_signal():
    # The reference recipe (Adam 4e-4, LR halved at epochs 10/20/30) learns slowly on tiny data.
    records, _, _ = run(clip_task(n_per_class=40, signal=0.9), heads=("linear",), epochs=40, directions=["v2a"], batch_size=4)
    assert records[0].metrics["accuracy"] >= 60.0  # chance is 25 %
    assert records[0].val_metrics is not None and records[0].best_epoch is not None


def test_variant_errors():
    one_level = codebooks(levels=1)
    with pytest.raises(ConfigError, match="needs 2 codebook levels"):
        resolve_view("hdcid", one_level, None)
    with pytest.raises(ConfigError, match="needs selection FILE or channels"):
        resolve_view("dcid+toc", one_level, None)
    with pytest.raises(ConfigError, match="level 1"):
        resolve_view("hdcid+toc", codebooks(), selection_file({0: (1, 2)}))
    with pytest.raises(ConfigError, match="selects channel 40"):
        resolve_view("dcid+toc", one_level, selection_file({0: (40,)}))
    with pytest.raises(ConfigError, match="unknown variant"):
        get_variant("bogus")
    assert default_variants(1, with_toc=False) == ["dcid"] and default_variants(2, with_toc=True) == ["hdcid+toc"]


def test_inline_selection_uses_toc():
    cbs = codebooks()
    made = SelectionFile.from_selections(
        select_levels(cbs, TocSettings(channels=6)), checkpoint_path="c.pt", checkpoint_sha256="",
        family="hdcid-avt", parameters={},
    )
    view = resolve_view("hdcid+toc", cbs, made)
    assert [list(c) for c in view.channels] == [select_channels(cb, 6, 1, 1).tolist() for cb in cbs]


def test_disk_cache_reused_and_corrupt_file_rebuilt(tmp_path):
    data = clip_task()
    _, cache, source = run(data, cache_dir=tmp_path, directions=["v2a"])
    assert len(source.calls) == 2 and cache.encoder_runs == 2
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 2
    records2, cache2, source2 = run(data, cache_dir=tmp_path, directions=["v2a", "a2v"], variants=["hdcid"])
    assert source2.calls == [] and cache2.disk_hits == 2
    # An interrupted write (no completion mark) and a garbage file are both rebuilt.
    with h5py.File(files[0], "a") as handle:
        del handle.attrs["complete"]
    files[1].write_bytes(b"not an h5 file")
    _, cache3, source3 = run(data, cache_dir=tmp_path, directions=["v2a"])
    assert len(source3.calls) == 2 and cache3.disk_hits == 0
    _, _, source4 = run(data, cache_dir=tmp_path, directions=["v2a"])
    assert source4.calls == []
    # Another dtype is another key.
    _, _, source5 = run(data, cache_dir=tmp_path, directions=["v2a"], dtype="float64")
    assert len(source5.calls) == 2
