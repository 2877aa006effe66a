"""`--channels auto`: the channel budget chosen per task and direction on the validation split.

The choice must not depend on the evaluated rows (their labels are permuted and the choice is
compared), must find the channels that carry the class on a planted codebook, must be recorded
in a selection file that reads back equal, and bad values must stop with one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from tests.evalfixtures import FakeCodeSource, T, _feature_set
from toc.codebook.selection import read_selection, selection_for
from toc.codebook.settings import BudgetGrid, BudgetSearch, TocRequest
from toc.data.base import TaskData
from toc.errors import ConfigError, DataError, SettingsError
from toc.eval.cache import CodeCache
from toc.eval.loop import EvalRequest, run_evaluation
from toc.pipeline.budget import choose_budgets, with_choices
from toc.pipeline.plan import load_plan
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_planted_ave

N_CLASSES, K, WIDTH, INFORMATIVE = 4, 24, 32, 6


def planted_codebook(seed: int = 0) -> np.ndarray:
    """K codes x WIDTH channels. The class codes (2 per class) carry a ±4 pattern on the first
    INFORMATIVE channels (two classes + and two - on each channel) and 0 elsewhere; the other
    codes, which clips use at random, are 0 there and N(0, 1.5²) on the remaining channels. So
    only the first channels carry the class, and they have the largest TOC scores."""
    rng = np.random.default_rng(seed)
    codebook = np.zeros((K, WIDTH))
    for d in range(INFORMATIVE):
        signs = rng.permutation([4.0, 4.0, -4.0, -4.0])
        for c in range(N_CLASSES):
            codebook[2 * c : 2 * c + 2, d] = signs[c]
    codebook[2 * N_CLASSES :, INFORMATIVE:] = 1.5 * rng.normal(size=(K - 2 * N_CLASSES, WIDTH - INFORMATIVE))
    return codebook


def planted_task(seed: int = 0, n_per_class: int = 30) -> TaskData:
    """A clip task whose clips use their class's codes (70 %) or any code; predefined splits."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(N_CLASSES), n_per_class)
    rng.shuffle(classes)
    n = classes.size

    def codes() -> np.ndarray:
        own = classes[:, None] * 2 + rng.integers(0, 2, (n, T))
        return np.where(rng.random((n, T)) < 0.7, own, rng.integers(0, K, (n, T)))[..., None]

    ids = [f"vid{i:04d}" for i in range(n)]
    order = rng.permutation(n)
    split = {"test": np.sort(order[: n // 4]), "val": np.sort(order[n // 4 : n // 2]), "train": np.sort(order[n // 2 :])}
    return TaskData(
        task="ave", kind="clip", class_names=[f"class{c}" for c in range(N_CLASSES)],
        sets={"mem/video": _feature_set("mem/video", "video", ids, classes, codes()),
              "mem/audio": _feature_set("mem/audio", "audio", ids, classes, codes())},
        directions={"v2a": ("mem/video", "mem/audio"), "a2v": ("mem/audio", "mem/video")},
        predefined_splits={"mem/video": split, "mem/audio": split},
    )


class MemorySession:
    """What the budget search needs of an evaluation session, on in-memory codes."""

    def __init__(self, codebook: np.ndarray):
        self.checkpoint = SimpleNamespace(
            path=Path("memory.pt"), sha256="f" * 64, family="dcid-avt", levels=1,
            codebooks=[torch.from_numpy(codebook)],
        )
        self.cache = CodeCache(FakeCodeSource([codebook]))
        self.method = "dcid"

    def select(self, settings):
        return selection_for(self.checkpoint, settings)


GRID = BudgetSearch(grid=BudgetGrid(channels=(1, 6, 12, 24, 32), patterns=((1, 0), (1, 1))), resamples=500)
REQUEST = EvalRequest(variants=("dcid+toc",), directions=("v2a",), heads=("prototype",), seeds=(0,))


def _choose(data: TaskData, search: BudgetSearch = GRID, request: EvalRequest = REQUEST):
    session = MemorySession(planted_codebook())
    return session, choose_budgets(session, data, request, search)


def test_planted_channels_are_kept_and_fewer_are_refused():
    data = planted_task()
    _, outcomes = _choose(data)
    (outcome,) = outcomes.values()
    choice = outcome.selection.choice
    kept = set(outcome.selection.levels[0].indices)
    # TOC ranks the class channels first; one channel cannot tell four classes apart and scores
    # lower on validation, so the rule must not take it, however few channels it keeps.
    assert kept >= set(range(INFORMATIVE)), (choice.settings_text(), sorted(kept))
    assert choice.point.channels < WIDTH
    by_point = {(p.channels, p.max_num, p.min_num): p for p in choice.curve}
    assert by_point[(1, 1, 0)].validation < choice.point.validation - 20
    assert not by_point[(1, 1, 0)].within_noise
    # The rule keeps the fewest channels among the points within noise of the best.
    within = [p for p in choice.curve if p.within_noise]
    assert sum(choice.point.n_channels) == min(sum(p.n_channels) for p in within)
    assert choice.point.validation >= choice.curve[choice.best].validation - choice.point.se
    assert choice.split_detail.startswith("cross-modal: mem/audio clips")
    _, same = _choose(planted_task(), replace(GRID, split="same-modality"))
    (same,) = same.values()
    assert same.selection.choice.split_detail.startswith("same-modality: mem/video clips")


def test_choice_reads_validation_only():
    """Permuting the labels of the evaluated clips leaves the choice unchanged, although the
    evaluation-split curve of the same heads moves."""
    data = planted_task(seed=1)
    rng = np.random.default_rng(5)
    audio = data.sets["mem/audio"]
    labels = np.asarray(audio.labels).copy()
    test = data.predefined_splits["mem/audio"]["test"]
    labels[test] = rng.permutation(labels[test])
    scrambled = replace(data, sets={**data.sets, "mem/audio": replace(audio, labels=labels)})

    runs = []
    for task in (data, scrambled):
        session, outcomes = _choose(task)
        request = replace(REQUEST, selections={key: o.selection for key, o in outcomes.items()})
        records = list(with_choices(run_evaluation(task, session.cache, request), outcomes, task, session, request, GRID))
        runs.append((outcomes, records))
    (before, records_before), (after, records_after) = runs
    assert {k: o.selection.choice.to_json() for k, o in before.items()} == {
        k: o.selection.choice.to_json() for k, o in after.items()
    }
    assert records_before[0].channels == records_after[0].channels
    # The scrambled evaluation labels did reach the evaluation: its scores and curve changed.
    assert records_before[0].metrics != records_after[0].metrics
    assert records_before[0].budget_evaluation != records_after[0].budget_evaluation
    assert records_before[0].budget_choice == records_after[0].budget_choice


def test_choice_is_deterministic_and_linear_heads_sweep_too():
    data = planted_task(seed=2, n_per_class=16)
    search = replace(GRID, grid=BudgetGrid(channels=(1, 12, 32), patterns=((1, 0),)))
    request = replace(REQUEST, heads=("linear",), epochs=3, seeds=(0, 1), head_workers=1)
    first = _choose(data, search, request)[1]
    second = _choose(data, search, request)[1]
    assert [o.selection.choice.to_json() for o in first.values()] == [o.selection.choice.to_json() for o in second.values()]
    (outcome,) = first.values()
    assert outcome.selection.choice.seeds == (0, 1)
    assert len(outcome.sweep.fits[0]) == 2  # every grid point has a head per seed


def test_selection_file_round_trips_and_refuses_a_choice_on_the_evaluated_rows(tmp_path):
    _, outcomes = _choose(planted_task())
    (outcome,) = outcomes.values()
    saved = outcome.selection.save(tmp_path / "auto.json")
    read = read_selection(saved.path)
    assert read.choice == outcome.selection.choice
    assert read.to_json() == outcome.selection.to_json()
    assert read.dumps() == saved.dumps()

    document = json.loads(saved.path.read_text())
    document["choice"]["split"] = "evaluation"
    (tmp_path / "leak.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="must be chosen on the validation split"):
        read_selection(tmp_path / "leak.json")
    document = json.loads(saved.path.read_text())
    document["levels"][0]["indices"] = document["levels"][0]["indices"][:1]
    document["levels"][0]["scores"] = document["levels"][0]["scores"][:1]
    (tmp_path / "short.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="does not match the levels"):
        read_selection(tmp_path / "short.json")


def test_result_lines_check_their_choice(tmp_path):
    from toc.report.results import read_results

    _, outcomes = _choose(planted_task())
    (outcome,) = outcomes.values()
    line = {"task": "ave", "direction": "v2a", "variant": "dcid+toc", "head": "prototype", "protocol": "strict",
            "seed": 0, "metrics": {"accuracy": 50.0}, "budget_choice": outcome.selection.choice.to_json()}
    (tmp_path / "ok.jsonl").write_text(json.dumps(line) + "\n")
    assert read_results([tmp_path / "ok.jsonl"]).records[0].budget_choice == line["budget_choice"]
    line["budget_choice"] = dict(line["budget_choice"], chosen=99)
    (tmp_path / "bad.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1.*budget_choice.chosen"):
        read_results([tmp_path / "bad.jsonl"])


def test_settings_rules():
    with pytest.raises(SettingsError, match="come from"):
        TocRequest(channels="auto", max_num=2).check(auto=True)
    with pytest.raises(SettingsError, match="needs"):
        TocRequest(channels=8, auto_grid="8").check(auto=True)
    with pytest.raises(SettingsError, match="does not read"):
        TocRequest(channels="auto").check()
    with pytest.raises(SettingsError, match="A/B"):
        TocRequest(channels="auto", auto_patterns="1/x").check(auto=True)
    with pytest.raises(SettingsError, match="exceeds the codebook width"):
        BudgetGrid(channels=(8, 300)).points(256)
    assert BudgetGrid().budgets(100) == (32, 64, 96, 100)
    assert TocRequest(channels="auto", auto_grid="step:16", score="sim_only").search().grid.budgets(40) == (16, 32, 40)


def test_plan_channels_auto(tmp_path):
    plan = tmp_path / "plan.toml"
    base = 'data_root = "d"\ntasks = ["ave"]\nvariants = ["dcid+toc"]\nheads = ["prototype"]\n[checkpoints]\ndcid = "a.pt"\n'
    plan.write_text(base + '[selection]\nchannels = "auto"\nauto_grid = [8, 16]\nauto_patterns = ["1/0"]\n')
    (job,) = load_plan(plan).jobs
    assert job.selection == BudgetSearch(grid=BudgetGrid(channels=(8, 16), patterns=((1, 0),)))
    plan.write_text(base + '[selection]\nchannels = "auto"\nauto_grid = [0]\n')
    with pytest.raises(ConfigError, match="auto_grid"):
        load_plan(plan)
    plan.write_text(base.replace('heads = ["prototype"]', 'heads = ["prototype"]\nprotocol = "reference"')
                    + '[selection]\nchannels = "auto"\n')
    with pytest.raises(ConfigError, match="validation split"):
        load_plan(plan)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    checkpoint = save_reference_checkpoint(root / "dcid.pt")  # a 16-channel codebook
    write_planted_ave(root / "data", n=48, n_classes=4, seed=0, n_train=24, n_val=12)
    return root, checkpoint


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_select_eval_and_report(tiny_corpus, tmp_path):
    root, checkpoint = tiny_corpus
    common = ("--checkpoint", checkpoint, "--data-root", root / "data", "--head", "prototype", "--cache-dir", root / "cache")
    grid = ("--auto-grid", "4,8,16")
    result = _invoke("select", checkpoint, "--channels", "auto", *grid, "--task", "ave", "--data-root", root / "data",
                     "--direction", "v2a", "--head", "prototype", "--cache-dir", root / "cache", "-o", tmp_path / "sel.json")
    assert result.exit_code == 0, result.output
    chosen = read_selection(tmp_path / "sel.json")
    assert chosen.choice is not None and chosen.choice.direction == "v2a" and chosen.choice.split == "validation"

    result = _invoke("eval", "ave", *common, "--channels", "auto", *grid, "--direction", "v2a", "-o", tmp_path / "auto.jsonl")
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in (tmp_path / "auto.jsonl").read_text().splitlines()]
    assert line["budget_choice"] == chosen.choice.to_json()
    assert line["channels"] == [chosen.levels[0].indices]
    assert len(line["budget_evaluation"]) == len(line["budget_choice"]["curve"])

    # Reusing the file: the same channels, and the line says where they were chosen.
    result = _invoke("eval", "ave", *common, "--selection", tmp_path / "sel.json", "--direction", "v2a",
                     "-o", tmp_path / "reuse.jsonl")
    assert result.exit_code == 0, result.output
    reused = json.loads((tmp_path / "reuse.jsonl").read_text())
    assert reused["channels"] == line["channels"] and reused["metrics"] == line["metrics"]
    assert reused["budget_choice"] == line["budget_choice"]

    result = _invoke("report", tmp_path / "auto.jsonl", "-o", tmp_path / "report")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## TOC budgets chosen on validation" in text and "not used to choose" in text
    assert "![ave · v2a · dcid+toc · prototype: validation and evaluation score per budget]" in text
    assert (tmp_path / "report" / "budget-ave-v2a-dcid-toc-prototype.png").is_file()
    page = (tmp_path / "report" / "report.html").read_text()
    assert "TOC budgets chosen on validation" in page and page.count("data:image/png") >= 2  # bar chart + sweep


def test_compare_plan_chooses_and_saves_per_direction(tiny_corpus, tmp_path):
    root, checkpoint = tiny_corpus
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'data_root = "{root / "data"}"\ntasks = ["ave"]\nvariants = ["dcid+toc"]\nheads = ["prototype", "codes"]\n'
        f'[checkpoints]\ndcid = "{checkpoint}"\n[selection]\nchannels = "auto"\nauto_grid = [4, 16]\n'
    )
    result = _invoke("compare", "--config", plan, "-o", tmp_path / "out", "--no-charts")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    for direction in ("v2a", "a2v"):
        saved = read_selection(tmp_path / "out" / f"toc-ave-dcid-{direction}-prototype.json")
        assert saved.choice.direction == direction
        mine = [x for x in lines if x["direction"] == direction]
        assert {x["head"] for x in mine} == {"prototype", "codes"}
        for line in mine:  # the code-id head reads the prototype head's budget, and says so
            assert line["channels"] == [saved.levels[0].indices]
            assert line["selection"].endswith(f"toc-ave-dcid-{direction}-prototype.json")
            assert ("budget_choice" in line) == (line["head"] == "prototype")


@pytest.mark.parametrize(("args", "expected"), [
    (("--auto-grid", "8,300"), "--auto-grid entry 300 exceeds the codebook width (expected <= 16)"),
    (("--protocol", "reference"), "--protocol reference has none"),
    (("--max-num", "2"), "--max-num / --min-num come from --auto-patterns under --channels auto"),
    (("--auto-patterns", "1/x"), "--auto-patterns entries are A/B"),
    (("--head", "codes"), "nothing to choose"),
])
def test_cli_bad_values_are_one_line(tiny_corpus, args, expected):
    root, checkpoint = tiny_corpus
    head = () if "--head" in args else ("--head", "prototype")
    result = _invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", root / "data", "--channels", "auto",
                     *head, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_cli_auto_where_no_validation_split_is_read(tiny_corpus, tmp_path):
    root, checkpoint = tiny_corpus
    for args in (
        ("plot", checkpoint, "--channels", "auto", "-o", tmp_path / "x.png"),
        ("eval", "retrieval", "--checkpoint", checkpoint, "--pairs", tmp_path / "p.h5", "--channels", "auto"),
        ("eval", "ave", "--checkpoint", checkpoint, "--data-root", root, "--auto-grid", "8", "--channels", "8"),
        ("select", checkpoint, "--channels", "auto"),
        ("select", checkpoint, "--channels", "8", "--task", "ave"),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert "applies only with --channels auto" in _invoke("select", checkpoint, "--channels", "8", "--task", "ave").output
    assert "needs --task" in _invoke("select", checkpoint, "--channels", "auto").output
