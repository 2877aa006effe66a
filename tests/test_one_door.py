"""One door for each TOC setting and each word of the vocabulary: the command line, a `toc
compare` plan and the Python API take the same defaults from one place and apply the same rules;
every reader of a selection checks that it was made for the checkpoint; `--help` needs no torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.commands import COMMAND_MODULES
from cli.main import cli
from tests.retrieval_fixtures import WORD_DIM, write_paired
from toc.codebook.selection import select_channels
from toc.codebook.settings import SETTING_DEFAULTS, TocRequest, TocSettings
from toc.errors import SettingsError
from toc.eval.loop import EvalRequest
from toc.pipeline.plan import load_plan, make_plan
from toc.pipeline.retrieval import RetrievalOptions
from toc.pipeline.session import EvalOptions
from toc.testing.checkpoints import save_reference_checkpoint
from toc.vocabulary import (
    DEFAULT_HEADS,
    DEFAULT_PROTOCOL,
    DEFAULT_SEEDS,
    ENCODE_BATCH_SIZE,
    HEAD_BATCH_SIZE,
)

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _option_default(command_path: list[str], name: str):
    """What `toc COMMAND` passes for `name` when the user gives nothing (Click's parsed default)."""
    context = cli.make_context("toc", [*command_path, "--help"], resilient_parsing=True)
    command = cli
    for part in command_path:
        command = command.get_command(context, part)
        context = command.make_context(part, [], parent=context, resilient_parsing=True)
    param = next(p for p in command.params if p.name == name)
    return param.get_default(context)


def test_toc_settings_defaults_are_one_set_everywhere(tmp_path):
    # The API: select_channels without settings equals TocSettings' defaults.
    codebook = torch.randn(40, 16, dtype=torch.float64)
    defaults = TocSettings(channels=8)
    spelled = select_channels(codebook, 8, defaults.max_num, defaults.min_num,
                              sim_weight=defaults.sim_weight, var_weight=defaults.var_weight)
    assert torch.equal(select_channels(codebook, 8), spelled)
    # The command line: help shows those defaults; a bare --channels gives them.
    help_text = " ".join(invoke("select", "--help").output.split())
    for name in ("max_num", "min_num", "sim_weight", "var_weight"):
        assert f"default: {SETTING_DEFAULTS[name]}" in help_text.split("--" + name.replace("_", "-"), 1)[1].split(" --", 1)[0]
    assert TocRequest(channels=8).settings() == defaults
    # A plan may omit every setting but the channel budget.
    plan = tmp_path / "plan.toml"
    plan.write_text('data_root = "d"\ntasks = ["ave"]\nvariants = ["dcid+toc"]\n[checkpoints]\ndcid = "a.pt"\n'
                    "[selection]\nchannels = 8\n")
    (job,) = load_plan(plan).jobs
    assert job.selection == defaults


def test_eval_and_compare_share_their_defaults():
    options = EvalOptions(task="ave", checkpoint="x.pt", data_root="d")
    plan = make_plan(source="code", checkpoints={"dcid": Path("a.pt")}, tasks=["ave"], toc=lambda *_: TocSettings(8),
                     data_root=Path("d"), variants=["dcid"])
    job = plan.jobs[0]
    request = EvalRequest(variants=["dcid"])
    for value in (options.seeds, job.seeds, request.seeds, tuple(int(s) for s in _option_default(["eval", "ave"], "seeds").split(","))):
        assert tuple(value) == DEFAULT_SEEDS
    for value in (options.heads, job.heads, request.heads, _option_default(["eval", "ave"], "heads")):
        assert tuple(value) == DEFAULT_HEADS
    for value in (options.batch_size, job.batch_size, request.batch_size, _option_default(["eval", "ave"], "batch_size")):
        assert value == HEAD_BATCH_SIZE
    assert options.protocol == job.protocol == request.protocol == DEFAULT_PROTOCOL
    assert options.dtype == job.dtype == _option_default(["eval", "ave"], "dtype") == _option_default(["encode"], "dtype")
    assert options.device == plan.device == _option_default(["eval", "ave"], "device") == _option_default(["encode"], "device")
    assert options.encode_batch_size == RetrievalOptions().batch_size == _option_default(["encode"], "batch_size") == ENCODE_BATCH_SIZE


@pytest.mark.parametrize("front_end", ["api", "request", "select", "eval", "plan"])
def test_score_or_weights_is_one_rule(front_end, tmp_path):
    if front_end == "api":
        with pytest.raises(SettingsError, match="sets both weights"):
            select_channels(torch.randn(20, 8, dtype=torch.float64), 4, score="sim_only", var_weight=0.3)
    elif front_end == "request":
        with pytest.raises(SettingsError, match="sets both weights"):
            TocRequest(channels=4, score="sim_only", sim_weight=0.5).check()
    elif front_end == "select":
        result = invoke("select", "x.pt", "--channels", 4, "--score", "sim_only", "--sim-weight", 0.5)
        assert result.exit_code == 2 and "--score sim_only sets both weights; drop --sim-weight" in result.output
    elif front_end == "eval":
        result = invoke("eval", "ave", "--checkpoint", "x.pt", "--data-root", tmp_path, "--channels", 4,
                        "--score", "sim_only", "--var-weight", 0.1)
        assert result.exit_code == 2 and "drop --var-weight" in result.output
    else:
        plan = tmp_path / "plan.toml"
        plan.write_text('data_root = "d"\ntasks = ["ave"]\nvariants = ["dcid+toc"]\n[checkpoints]\ndcid = "a.pt"\n'
                        '[selection]\nchannels = 8\nscore = "sim_only"\nsim_weight = 0.5\n')
        with pytest.raises(Exception, match="sets both weights"):
            load_plan(plan)


def test_the_toc_sources_are_alternatives_everywhere(tmp_path):
    for args in (["--selection", "s.json", "--channels", 8], ["--channels", 8, "--toc-preset", "published"]):
        result = invoke("eval", "ave", "--checkpoint", "x.pt", "--data-root", tmp_path, *args)
        assert result.exit_code == 2 and "are alternatives" in result.output
    result = invoke("eval", "retrieval", "--checkpoint", "x.pt", "--pairs", "p.h5", "--selection", "s.json", "--channels", 8)
    assert result.exit_code == 2 and "are alternatives" in result.output
    result = invoke("eval", "retrieval", "--checkpoint", "x.pt", "--pairs", "p.h5", "--max-num", 2)
    assert result.exit_code == 2 and "need --channels" in result.output
    with pytest.raises(SettingsError, match="not offered"):
        TocRequest(preset="published").check(("selection", "channels"))


def test_retrieval_refuses_a_selection_made_for_another_checkpoint(tmp_path):
    ours = save_reference_checkpoint(tmp_path / "ours.pt", "dcid-avt", text_dim=WORD_DIM, seed=0)
    other = save_reference_checkpoint(tmp_path / "other.pt", "dcid-avt", text_dim=WORD_DIM, seed=1)
    write_paired(tmp_path / "pairs.h5", n=6, modalities=("audio", "text"))
    assert invoke("select", other, "--channels", 16, "-o", tmp_path / "other.json").exit_code == 0
    assert invoke("select", ours, "--channels", 16, "-o", tmp_path / "ours.json").exit_code == 0
    common = ["eval", "retrieval", "--pairs", tmp_path / "pairs.h5", "--vectors", "codewords"]
    refused = invoke(*common, "--checkpoint", ours, "--selection", tmp_path / "other.json")
    assert refused.exit_code == 1 and "selection was made for checkpoint" in refused.output
    accepted = invoke(*common, "--checkpoint", ours, "--selection", tmp_path / "ours.json")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout.splitlines()[0])["variant"] == "dcid+toc"
    # Without a checkpoint, the codes files name theirs.
    with h5py.File(tmp_path / "pairs.h5") as handle:
        for modality in ("audio", "text"):
            np.save(tmp_path / f"{modality}.npy", np.asarray(handle[modality]))
    for modality in ("audio", "text"):
        assert invoke("encode", ours, "--modality", modality, "--input", tmp_path / f"{modality}.npy",
                      "-o", tmp_path / f"{modality}.h5").exit_code == 0
    encoded = ["eval", "retrieval", "--encoded", tmp_path / "audio.h5", "--encoded", tmp_path / "text.h5"]
    refused = invoke(*encoded, "--selection", tmp_path / "other.json")
    assert refused.exit_code == 1 and "encoded files come from" in refused.output
    assert invoke(*encoded, "--selection", tmp_path / "ours.json").exit_code == 0


def test_every_command_is_found_lazily_and_help_needs_no_torch():
    # One process: `toc --help` and every `toc COMMAND --help`, then what was imported.
    names = [*COMMAND_MODULES, "eval ave", "eval retrieval"]
    code = (
        "import sys\nfrom cli.main import cli\n"
        f"for name in {['--help', *names]!r}:\n"
        "    args = name.split() + ([] if name == '--help' else ['--help'])\n"
        "    try:\n        cli.main(args=args, prog_name='toc', standalone_mode=False)\n"
        "    except SystemExit as exc:\n        assert not exc.code, (name, exc.code)\n"
        "print(sorted(m for m in ('torch', 'h5py', 'scipy', 'matplotlib') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    for name in COMMAND_MODULES:
        assert f"  {name} " in done.stdout.split("Commands:", 1)[1]
    listed = sorted(cli.list_commands(cli.make_context("toc", ["--help"], resilient_parsing=True)))
    assert listed == sorted(COMMAND_MODULES)


def test_no_module_aliases_and_no_benchmark_imports_tests():
    import toc

    assert not [f for f in sys.meta_path if type(f).__module__.startswith(("cmg_base", "toc", "hdcid"))]
    assert set(toc.__all__) >= {"TocSettings", "select_channels", "load_checkpoint"}
    assert toc.TocSettings is TocSettings
    offenders = [p.name for p in (ROOT / "benchmarks").glob("*.py")
                 if "from tests" in p.read_text() or "import tests" in p.read_text()]
    assert offenders == []


def test_a_settings_field_has_one_default():
    fields = {f.name: f.default for f in dataclasses.fields(TocSettings) if f.default is not dataclasses.MISSING}
    assert fields == SETTING_DEFAULTS
