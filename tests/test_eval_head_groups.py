"""Grouped linear heads: a group of N equals N groups of one bit for bit, both agree with the
per-head autograd loop (toc.eval.heads.train_linear_head) to float64 rounding, and an evaluation
gives the same records, every field, whichever engine trains its heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from evalfixtures import FakeCodeSource, clip_task, codebooks, segment_task, single_thread

import toc.eval.loop as loop
from cli.main import cli
from toc.codebook.selection import LevelSelection, SelectionFile
from toc.errors import ConfigError, SettingsError
from toc.eval.cache import CodeCache
from toc.eval.head_groups import (
    LinearHeadJob,
    _gradients,
    _Weights,
    factor_codes,
    factor_dense,
    train_linear_heads,
    usable_cpus,
)
from toc.eval.heads import ClipHead, ExpLogLoss, LinearHeadConfig, SegmentHead, train_linear_head
from toc.eval.loop import EvalRequest, run_evaluation
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_planted_ave

T = 10


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def make_levels(rng, n, widths=(6, 4), k=20):
    tables = [rng.normal(size=(k, w)) for w in widths]
    codes = [rng.integers(0, k, (n, T)) for _ in widths]
    return tables, codes


def dense_of(tables, codes):
    return np.concatenate([t[c] for t, c in zip(tables, codes, strict=True)], axis=-1)


def targets(rng, kind, n, n_out):
    if kind == "clip":
        return rng.integers(0, n_out, n)
    return (rng.random((n, T, n_out)) < 0.3).astype(np.float64)


def state(result):
    return {k: v.clone() for k, v in result.predictor.module.state_dict().items()}


# ------------------------------------------------------------------------------------ factoring


def test_factor_codes_equals_factor_dense_and_reproduces_the_features():
    rng = np.random.default_rng(0)
    tables, codes = make_levels(rng, 30)
    tables[0][3] = tables[0][5]  # two codes with byte-identical rows share one table row
    tables[1][2, 0] = -0.0
    tables[1][4] = tables[1][2]
    tables[1][4, 0] = 0.0  # differs from row 2 only in the sign of zero: kept apart
    from_codes = factor_codes(tables, codes)
    dense = dense_of(tables, codes)
    from_dense = factor_dense(dense, (6, 4))
    for a, b in zip(from_codes.tables + from_codes.indices, from_dense.tables + from_dense.indices, strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(from_codes.dense().view(np.uint64), dense.view(np.uint64))
    used = np.unique(codes[0])
    assert from_codes.tables[0].shape[0] == used.size - (3 in used and 5 in used)
    assert from_codes.widths == (6, 4) and from_codes.n == 30 and from_codes.steps == T


def test_factor_dense_rejects_bad_widths():
    with pytest.raises(ConfigError, match="do not add up"):
        factor_dense(np.zeros((2, T, 5)), (3, 3))
    with pytest.raises(ConfigError, match=r"\[N, T, D\]"):
        factor_dense(np.zeros((2, 5)))


# ------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("kind", ["clip", "segment"])
@pytest.mark.parametrize("widths", [(7,), (6, 4)])
def test_gradients_equal_autograd_of_the_reference_module(kind, widths):
    rng = np.random.default_rng(1)
    tables, codes = make_levels(rng, 16, widths)
    n_out = 5
    y = targets(rng, kind, 16, n_out)
    torch.manual_seed(0)
    width = sum(widths)
    head = ClipHead(width, n_out) if kind == "clip" else SegmentHead(width, n_out)
    exp_log = ExpLogLoss(n_out) if kind == "segment" else None
    if exp_log is not None:
        with torch.no_grad():
            for a in exp_log.alphas:
                a.uniform_(-0.5, 0.5)
    x = torch.from_numpy(dense_of(tables, codes))
    logits = head(x)
    if kind == "clip":
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    else:
        yt = torch.from_numpy(y).reshape(-1, n_out)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt) + exp_log(logits, yt)
    params = list(head.parameters()) + (list(exp_log.parameters()) if exp_log else [])
    expected = torch.autograd.grad(loss, params)

    factored = factor_codes(tables, codes)
    w1 = head.linear.weight.detach()
    splits = np.cumsum((0, *widths))
    weights = _Weights(
        [w1[:, a:b].clone() for a, b in zip(splits[:-1], splits[1:], strict=True)], head.linear.bias.detach(),
        head.event_classifier.weight.detach(), head.event_classifier.bias.detach(),
    )
    alphas = torch.stack([a.detach() for a in exp_log.alphas]) if exp_log else None
    yt = torch.from_numpy(y)
    grads, alpha_grad = _gradients(kind, weights, alphas, factored.tables, list(factored.indices), yt)
    got_w1 = torch.cat(grads[: len(widths)], dim=1)
    torch.testing.assert_close(got_w1, expected[0], rtol=1e-12, atol=1e-14)
    for got, want in zip(grads[len(widths) :], expected[1:4], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    if exp_log is not None:
        torch.testing.assert_close(alpha_grad, torch.stack(expected[4:]), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------------ groups


def _jobs(rng, kind):
    """Heads that differ in view (width, levels), seed and (per seed) training features."""
    n, n_out = 48, 4
    tables, codes = make_levels(rng, n, (6, 4))
    y = targets(rng, kind, n, n_out)
    val_codes = [rng.integers(0, 20, (12, T)) for _ in tables]
    views = {
        "one-level": ([tables[0]], [codes[0]], [val_codes[0]]),
        "two-level": (tables, codes, val_codes),
        "subset": ([tables[0][:, [4, 1, 2]], tables[1][:, [0, 3]]], codes, val_codes),
    }
    jobs = []
    for name, (view_tables, view_codes, view_val) in views.items():
        x_val = factor_codes(view_tables, view_val)

        def judge(epoch, predictor, x_val=x_val):
            predicted = predictor.predict(x_val)
            return float(np.mean(predicted == 1)), {"epoch": epoch}

        for seed in (0, 1, 2):
            # Per-seed features, as the reference protocol's dropout-seeded encodings give.
            noisy = [np.where(rng.random(c.shape) < 0.1, (c + 1) % 20, c) for c in view_codes]
            jobs.append(LinearHeadJob(kind, factor_codes(view_tables, noisy), y, n_out, seed, judge, key=(name, seed)))
    return jobs, [view_tables for view_tables, _, _ in views.values()]


@pytest.mark.parametrize("kind", ["clip", "segment"])
def test_a_group_of_n_equals_n_groups_of_one_bit_for_bit(kind):
    jobs, _ = _jobs(np.random.default_rng(2), kind)
    config = LinearHeadConfig(epochs=4, batch_size=10, milestones=(1, 3), clip_loss_alphas=kind == "segment")
    alone = [train_linear_heads([job], config, workers=1)[0] for job in jobs]
    for workers, parallel in ((1, "auto"), (2, "process"), (3, "process"), (2, "thread")):
        together = train_linear_heads(jobs, config, workers=workers, parallel=parallel)
        for job, a, b in zip(jobs, alone, together, strict=True):
            sa, sb = state(a), state(b)
            for name in sa:
                assert torch.equal(sa[name], sb[name]), (job.key, workers, name)
            assert [(h.epoch, h.score, h.metrics) for h in a.history] == [(h.epoch, h.score, h.metrics) for h in b.history]
            assert a.best_epoch == b.best_epoch, (job.key, workers, parallel)
            x = job.features
            np.testing.assert_array_equal(a.predictor.predict(x), b.predictor.predict(x))
    # and a rerun is identical
    again = train_linear_heads(jobs, config, workers=2)
    assert all(torch.equal(state(a)["linear.weight"], state(b)["linear.weight"]) for a, b in zip(alone, again, strict=True))


@pytest.mark.parametrize("kind", ["clip", "segment"])
@pytest.mark.parametrize("widths", [(8,), (6, 4)])
def test_grouped_heads_agree_with_the_per_head_autograd_loop(kind, widths):
    rng = np.random.default_rng(3)
    n, n_out = 60, 4
    tables, codes = make_levels(rng, n, widths)
    y = targets(rng, kind, n, n_out)
    dense = dense_of(tables, codes)
    x_val = dense_of(tables, [rng.integers(0, 20, (20, T)) for _ in widths])
    # Epochs cross two milestones; AVE→AVVP's alpha clipping is on for the segment case.
    config = LinearHeadConfig(epochs=5, batch_size=16, milestones=(2, 4), gamma=0.3, clip_loss_alphas=kind == "segment")

    def judge(epoch, predictor):
        return float(np.mean(predictor.predict(x_val) == (1 if kind == "clip" else True))), {}

    autograd = train_linear_head(kind, dense, y, n_out, config, 7, judge)
    (grouped,) = train_linear_heads([LinearHeadJob(kind, factor_codes(tables, codes), y, n_out, 7, judge)], config)
    sa, sb = state(autograd), state(grouped)
    for name in sa:
        # Same function and gradients, summed in another order: float64 rounding only, which five
        # epochs of SGD grow to about 1e-11 on some CPUs (seen on an AMD EPYC: 1.3e-11 absolute);
        # a wrong gradient differs by orders of magnitude more.
        torch.testing.assert_close(sb[name], sa[name], rtol=1e-8, atol=1e-10)
    assert [h.score for h in autograd.history] == [h.score for h in grouped.history]
    assert autograd.best_epoch == grouped.best_epoch
    np.testing.assert_array_equal(autograd.predictor.predict(dense), grouped.predictor.predict(dense))
    np.testing.assert_array_equal(grouped.predictor.predict(dense), grouped.predictor.predict(factor_codes(tables, codes)))


def test_features_per_epoch_and_dense_input():
    rng = np.random.default_rng(4)
    tables, codes = make_levels(rng, 30, (5,))
    y = rng.integers(0, 3, 30)
    config = LinearHeadConfig(epochs=3, batch_size=8)
    seen = []

    def per_epoch(epoch):
        seen.append(epoch)
        return dense_of(tables, [np.roll(codes[0], epoch, axis=1)])

    def judge(epoch, _predictor):
        return float(-epoch), {}

    (result,) = train_linear_heads([LinearHeadJob("clip", per_epoch, y, 3, 0, judge)], config)
    autograd = train_linear_head("clip", per_epoch, y, 3, config, 0, judge)
    assert seen == [0, 1, 2, 0, 1, 2]
    assert result.best_epoch == 0 == autograd.best_epoch
    torch.testing.assert_close(state(result)["linear.weight"], state(autograd)["linear.weight"], rtol=1e-10, atol=1e-12)


def test_bad_jobs_raise_config_errors():
    config = LinearHeadConfig(epochs=1)
    empty = factor_codes([np.zeros((3, 2))], [np.zeros((0, T), np.int64)])
    with pytest.raises(ConfigError, match="training set empty"):
        train_linear_heads([LinearHeadJob("clip", empty, np.zeros(0), 2, 0, lambda e, p: (0.0, {}))], config)
    x = factor_codes([np.ones((3, 2))], [np.zeros((4, T), np.int64)])
    with pytest.raises(ConfigError, match="3 targets for 4"):
        train_linear_heads([LinearHeadJob("clip", x, np.zeros(3), 2, 0, lambda e, p: (0.0, {}))], config)
    with pytest.raises(ConfigError, match="unknown task kind"):
        train_linear_heads([LinearHeadJob("frame", x, np.zeros(4), 2, 0, lambda e, p: (0.0, {}))], config)
    with pytest.raises(ConfigError, match="workers"):
        train_linear_heads([LinearHeadJob("clip", x, np.zeros(4), 2, 0, lambda e, p: (0.0, {}))], config, workers=0)
    assert train_linear_heads([], config) == []
    assert usable_cpus() >= 1


# ------------------------------------------------------------------------------------ observe


@pytest.mark.parametrize("workers, parallel", [(1, "auto"), (2, "process"), (2, "thread")])
def test_what_observe_returns_comes_back_per_epoch_from_any_worker(workers, parallel):
    rng = np.random.default_rng(9)
    tables, codes = make_levels(rng, 30, (5,))
    x = factor_codes(tables, codes)
    y = rng.integers(0, 3, 30)

    def judge(epoch, predictor):
        return 0.0, {}

    def observe(epoch, predictor):
        return {"epoch": epoch, "ones": int(np.sum(predictor.predict(x) == 1))}

    jobs = [LinearHeadJob("clip", x, y, 3, seed, judge, observe=observe) for seed in (0, 1, 2)]
    config = LinearHeadConfig(epochs=3, batch_size=8)
    alone = [train_linear_heads([job], config, workers=1)[0] for job in jobs]
    together = train_linear_heads(jobs, config, workers=workers, parallel=parallel)
    for a, b in zip(alone, together, strict=True):
        assert [o["epoch"] for o in b.observed] == [0, 1, 2]
        assert a.observed == b.observed
    assert train_linear_heads([LinearHeadJob("clip", x, y, 3, 0, judge)], config)[0].observed == []


# ------------------------------------------------------------------------------------ evaluate


def selection_file(levels: dict[int, tuple[int, ...]], width: int = 12) -> SelectionFile:
    """A selection artifact naming these channels per level (scores are irrelevant here)."""
    return SelectionFile(
        checkpoint_path="ckpt.pt", checkpoint_sha256="", family="hdcid-avt", parameters={},
        levels=tuple(LevelSelection(level, (24, width), list(idx), [0.0 for _ in idx]) for level, idx in levels.items()),
    )


SELECTION = selection_file({0: (3, 1, 7, 5), 1: (0, 2, 4)})
ALL_VARIANTS = ["dcid", "dcid+toc", "hdcid", "hdcid+toc"]


def _evaluate(data, engine, *, family=None, levels=2, **kwargs):
    source = FakeCodeSource(codebooks(levels=levels), epoch=2)
    source.family = family
    request = EvalRequest(**{
        "variants": ALL_VARIANTS, "heads": ("linear", "prototype"), "selection": SELECTION, "epochs": 4,
        "batch_size": 16, "seeds": (0, 1), "head_engine": engine, **kwargs,
    })
    return [r.to_json() for r in run_evaluation(data, CodeCache(source), request)]


def _without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


CASES = {
    # AVE-like predefined splits; the reference protocol: dropout-seeded encodings per seed, the
    # epoch picked on the evaluated rows (Q5/Q7).
    "clip-strict": (lambda: clip_task(), {}),
    "clip-reference": (lambda: clip_task(), {"protocol": "reference"}),
    # The own-data task: a seeded video-level split, two split seeds.
    "paired-video-level": (lambda: clip_task(predefined=False, task="paired"), {"split_seeds": (0, 1)}),
    # Segment tasks, both directions: per-video parts, LLP scores of each direction and of both.
    "avvp-strict": (lambda: segment_task(n_videos=24), {"split_seeds": (0, 3)}),
    "ave-avvp-reference": (lambda: segment_task(n_videos=16, task="ave-avvp"), {"protocol": "reference"}),
    # FCID's AVE script: the same-modality score keeps its own best epoch.
    "fcid-ave-reference": (
        lambda: clip_task(n_per_class=8, n_classes=3, levels=1, signal=0.5),
        {"protocol": "reference", "family": "fcid-avt", "levels": 1, "variants": ["fcid", "fcid+toc"],
         "epochs": 12, "seeds": (0, 1, 2)},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_engine_gives_the_same_records_every_field(case, monkeypatch):
    make_task, kwargs = CASES[case]
    data = make_task()

    def refused(*args, **kwargs):
        raise AssertionError("this engine should not train here")

    # Each engine takes its own route: the grouped code, or the per-head autograd loop.
    with monkeypatch.context() as patch:
        patch.setattr(loop, "train_linear_head", refused)
        grouped = _evaluate(data, "grouped", head_workers=2, **kwargs)
        single = _evaluate(data, "single", **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(loop, "train_linear_heads", refused)
        autograd = _evaluate(data, "autograd", **kwargs)
    assert len(grouped) == len(single) == len(autograd) > 0
    assert {r["head"] for r in grouped} == {"linear", "prototype"}
    # Same code in groups of N and of one: bit for bit, every field but the wall time.
    assert _without_seconds(grouped) == _without_seconds(single)
    # The per-head autograd loop sums in another order (float64 rounding only): on these sets
    # every field still agrees, per-unit outcomes included.
    assert _without_seconds(grouped) == _without_seconds(autograd)
    for record in grouped:
        assert record["eval_parts"] and record["seconds"] > 0
        if record["head"] == "linear":
            assert record["best_epoch"] is not None and record["epochs_trained"] > 0


def test_fcid_own_best_goes_through_the_groups():
    """The FCID AVE rule (the same-modality maximum over epochs) is applied to grouped heads from
    the per-epoch scores their workers send back: it differs from the value at the selected epoch."""
    make_task, kwargs = CASES["fcid-ave-reference"]
    data = make_task()
    own_best = _evaluate(data, "grouped", head_workers=2, heads=("linear",), **kwargs)
    at_selected = _evaluate(data, "grouped", head_workers=2, heads=("linear",), **{**kwargs, "family": None,
                            "variants": ["dcid", "dcid+toc"]})
    raised = 0
    for a, b in zip(own_best, at_selected, strict=True):
        assert a["metrics"] == b["metrics"] and a["best_epoch"] == b["best_epoch"]
        assert a["same_modality"]["accuracy"] >= b["same_modality"]["accuracy"]
        raised += a["same_modality"]["accuracy"] > b["same_modality"]["accuracy"]
    assert raised > 0


def test_bad_head_settings_are_settings_errors():
    with pytest.raises(SettingsError, match="must be one of grouped, single, autograd"):
        EvalRequest(variants=["dcid"], head_engine="fast")
    with pytest.raises(SettingsError, match="at least 1"):
        EvalRequest(variants=["dcid"], head_workers=0)


@pytest.mark.parametrize("parallel", ["thread", "process"])
def test_an_error_in_one_worker_stops_the_others_and_is_raised(parallel):
    rng = np.random.default_rng(5)
    tables, codes = make_levels(rng, 40, (5,))
    x = factor_codes(tables, codes)
    y = rng.integers(0, 3, 40)
    calls = []

    def fails(epoch, _predictor):
        raise ValueError("judge broke")

    def counts(epoch, _predictor):
        calls.append(epoch)
        return 0.0, {}

    jobs = [LinearHeadJob("clip", x, y, 3, 0, fails), LinearHeadJob("clip", x, y, 3, 1, counts)]
    with pytest.raises(ValueError, match="judge broke"):
        train_linear_heads(jobs, LinearHeadConfig(epochs=500, batch_size=4), workers=2, parallel=parallel)
    assert len(calls) < 500  # threads: the other worker stopped early; processes: it was terminated


def test_a_judge_error_that_does_not_pickle_still_reaches_the_caller():
    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}/{b}")

    rng = np.random.default_rng(6)
    x = factor_codes([rng.normal(size=(5, 3))], [rng.integers(0, 5, (12, T))])

    def fails(epoch, _predictor):
        raise Odd(1, 2)

    jobs = [LinearHeadJob("clip", x, rng.integers(0, 2, 12), 2, s, fails) for s in (0, 1)]
    with pytest.raises(Exception, match="1/2"):
        train_linear_heads(jobs, LinearHeadConfig(epochs=2, batch_size=4), workers=2, parallel="process")
    with pytest.raises(ConfigError, match="parallelism"):
        train_linear_heads(jobs, LinearHeadConfig(epochs=1), parallel="gpu")


def test_without_the_fused_kernel_the_plain_adam_agrees(monkeypatch):
    """Older torch has no CPU fused Adam; the single-tensor formula must give the same training."""
    import toc.eval.head_groups as head_groups

    rng = np.random.default_rng(7)
    tables, codes = make_levels(rng, 40, (6, 4))
    y = rng.integers(0, 3, 40)
    config = LinearHeadConfig(epochs=3, batch_size=8, milestones=(1,))

    def judge(epoch, _predictor):
        return 0.0, {}

    job = LinearHeadJob("clip", factor_codes(tables, codes), y, 3, 0, judge)
    fused = state(train_linear_heads([job], config)[0])
    monkeypatch.setattr(head_groups, "_FUSED_ADAM", False)
    plain = [state(r) for r in train_linear_heads([job, job], config, workers=2, parallel="thread")]
    for name in fused:
        torch.testing.assert_close(plain[0][name], fused[name], rtol=1e-10, atol=1e-12)
        assert torch.equal(plain[0][name], plain[1][name])


def test_cli_head_engines_write_the_same_lines(tmp_path):
    write_planted_ave(tmp_path / "data", 20, n_classes=3, seed=8, n_train=12, n_val=3)
    ckpt = save_reference_checkpoint(tmp_path / "hdcid.pt", "hdcid-avt")
    common = ["eval", "ave", "--checkpoint", str(ckpt), "--data-root", str(tmp_path / "data"), "--variant", "dcid,hdcid",
              "--head", "linear", "--epochs", "3", "--seeds", "0,1", "--cache-dir", str(tmp_path / "cache")]

    def lines(*extra):
        result = CliRunner().invoke(cli, [*common, *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    grouped = lines()
    assert len(grouped) == 2 * 2 * 2
    assert lines("--head-engine", "single", "--head-workers", "1") == grouped
    assert lines("--head-engine", "autograd") == grouped
    bad = CliRunner().invoke(cli, [*common, "--head-engine", "fast"])
    assert bad.exit_code == 2 and "--head-engine" in bad.output
    bad = CliRunner().invoke(cli, [*common, "--head-workers", "0"])
    assert bad.exit_code == 2 and "--head-workers" in bad.output
