"""README's command blocks run, as written, on the built-in data.

Every ```bash block of README.md is run, except the two set-up commands at the top (`bash
.ci/setup && ...`: installing, the full demo and the test suite, which CI runs itself). They run
in a temporary folder holding what a reader has after the first command: `toc-demo/`, here from
`toc demo --quick` (the same data layout and file names as the full demo, smaller), and the
released checkpoints under their published file names, as stand-ins built from built-in data:

* `nips2023_AVT_vgg40k_size400.pt` (DCID): the reference fixture `dcid_small.pt`, a DCID-AVT
  checkpoint with the published input widths (audio 128, video 7×7×512) and 256-wide codes;
* `warmstart3-MLVQ-AVT-Noshared-400-deep2-model-3.pt` (H-DCID): one `toc train` step on the demo's
  data, an H-DCID checkpoint with the published codebook shape (2 levels of 400 × 256, the shape
  `toc train` keeps), so the README's budgets fit it.

The ```toml block is written to PLAN.toml, the name the README gives it. Commands go through the
installed `toc` entry point (Click's test runner, in this process: one import instead of one per
command). Each must exit 0 and write every `-o` output it names. Long runs get flags
appended that only shrink them (SHRINK below): the README's own flags are kept, so a flag it
drops or renames still fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The two top commands: README states them and .ci/run runs the second; they are not run here.
SETUP_COMMANDS = (
    "bash .ci/setup && .venv/bin/toc demo",
    "bash .ci/setup && .venv/bin/python -m pytest -q",
)
TOC = ".venv/bin/toc"
DCID_RELEASED = "nips2023_AVT_vgg40k_size400.pt"
HDCID_RELEASED = "warmstart3-MLVQ-AVT-Noshared-400-deep2-model-3.pt"
PLAN = "PLAN.toml"

# Flags appended to a command (by its subcommand) that make it shorter and change nothing else it
# is checked for: training runs two steps instead of the default's 400, without the per-epoch
# diagnostics (`toc health` measures the sharing itself), and linear heads train 2 epochs instead
# of the task's 50.
SHRINK = {
    ("train",): ["--epochs", "1", "--max-steps", "2", "--diagnostics-clips", "0"],
    ("eval", "ave"): ["--epochs", "2"],
    ("eval", "paired"): ["--epochs", "2"],
}
PLAN_SHRINK = "epochs = 2\n"  # the same for the plan's heads (a top-level key, so it goes first)

# What the README's jobs promise to show; a block that disappears fails here, so the test
# cannot pass by finding nothing to run.
REQUIRED = {
    ("inspect",), ("select",), ("plot",), ("encode",),  # TOC on a released checkpoint
    ("eval", "ave"), ("report",), ("compare",),  # the variants compared on AVE
    ("synth",), ("train",), ("eval", "paired"),  # your own features
    ("health",),
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def _commands(block: str) -> list[list[str]]:
    """The block's command lines (continuations joined), each split as bash would, comments dropped."""
    lines = block.replace("\\\n", " ").splitlines()
    return [words for words in (shlex.split(line, comments=True) for line in lines) if words]


def _subcommand(args: list[str]) -> tuple[str, ...]:
    return tuple(args[:2]) if args[0] == "eval" else (args[0],)


def _outputs(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-o", "--output")]


def _entry_point():
    """The installed `toc` command's Click group (what `.venv/bin/toc` runs)."""
    (script,) = entry_points(group="console_scripts", name="toc")
    return script.load()


def _run(cli, args: list[str]):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, f"toc {shlex.join(args)} exited {result.exit_code}:\n{result.output[-3000:]}"
    return result


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The commands share this process: one torch thread, so that a busy 2-core machine runs them
    at a steady pace (with two threads on two busy cores they ran several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reader_folder(tmp_path_factory, dcid_small_path):
    """A folder as the README's reader has it after `toc demo`, with the released file names."""
    folder = tmp_path_factory.mktemp("readme")
    cli = _entry_point()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        _run(cli, ["demo", "--quick", "-o", "toc-demo"])
        shutil.copyfile(dcid_small_path, DCID_RELEASED)
        # Only its shape matters here: one step from the plain initialisation.
        standin = ["--epochs", "1", "--max-steps", "1", "--diagnostics-clips", "0", "--codebook-init", "uniform"]
        _run(cli, ["train", "--data-root", "toc-demo/data", "-o", "hdcid-standin", *standin])
        shutil.copyfile(Path("hdcid-standin") / "last.pt", HDCID_RELEASED)
    return folder


def test_readme_states_the_two_setup_commands():
    blocks = [block.strip() for block in _blocks("bash")]
    for command in SETUP_COMMANDS:
        assert command in blocks, f"README lost its top command {command!r} (.ci/run runs the test command)"


def test_readme_command_blocks_run_on_the_builtin_data(reader_folder):
    cli = _entry_point()
    blocks = [block for block in _blocks("bash") if block.strip() not in SETUP_COMMANDS]
    plans = _blocks("toml")
    assert len(plans) == 1, f"README should hold one plan (a ```toml block), found {len(plans)}"
    ran = set()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(reader_folder)
        Path(PLAN).write_text(PLAN_SHRINK + plans[0])
        for block in blocks:
            for words in _commands(block):
                assert words[0] == TOC, f"README block runs {words[0]!r}, not {TOC}: run it here or leave it out of README"
                args = words[1:]
                sub = _subcommand(args)
                _run(cli, args + SHRINK.get(sub, []))
                for output in _outputs(args):
                    assert Path(output).exists(), f"toc {shlex.join(args)} did not write {output}"
                    if sub in (("report",), ("compare",)):
                        assert (Path(output) / "report.md").is_file(), f"toc {shlex.join(args)} wrote no report.md"
                ran.add(sub)
        missing = REQUIRED - ran
        assert not missing, f"README no longer runs {sorted(' '.join(m) for m in missing)}"


def test_readme_names_only_demo_files_that_both_demo_sizes_write(reader_folder):
    """`toc-demo/...` paths in README exist after `toc demo --quick`, and none is a run folder:
    the full demo names them `dcid-p0`, `hdcid-p0`, ... (two pretraining runs), --quick `dcid`."""
    named = set(re.findall(r"toc-demo/[\w./-]*[\w/]", README.read_text())) | {"toc-demo/report.md", "toc-demo/report.html"}
    assert not [path for path in named if path.startswith("toc-demo/runs")], "README names a demo run folder"
    absent = sorted(path for path in named if not (reader_folder / path).exists())
    assert not absent, f"README names demo files that `toc demo --quick` does not write: {absent}"
