"""`toc train` end to end on a VGGSound-layout fixture: layout, toc loading, resume, bad data."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from cli.main import cli
from hdcid.training import SETTINGS, Trainer
from toc.testing.datafixtures import write_pretrain

ARGS = ["--levels", "2", "--audio-output-dim", "32", "--video-output-dim", "64", "--text-output-dim", "32",
        "--n-embeddings", "64", "--embedding-dim", "32", "--batch-size", "2", "--seed", "1",
        "--epochs", "2", "--diagnostics-clips", "4", "--level2-start", "0"]


def _steps(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in x]


def test_train_cli_layout_and_resume(tmp_path):
    from toc.codebook.checkpoint import load_checkpoint

    root = tmp_path / "data"
    write_pretrain(root)
    runner = CliRunner()
    full = runner.invoke(cli, ["train", "--data-root", str(root), *ARGS, "--max-steps", "3", "-o", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    summary = json.loads(full.stdout.strip().splitlines()[-1])
    assert summary["total_step"] == 3
    loaded = load_checkpoint(tmp_path / "full" / "last.pt")
    assert loaded.family == "hdcid-avt"
    assert (loaded.sizes.audio_output_dim, loaded.sizes.video_output_dim, loaded.sizes.text_output_dim) == (32, 64, 32)
    assert loaded.sizes.n_embeddings == 64 and (tmp_path / "full" / "epoch-0.pt").exists()
    part = runner.invoke(cli, ["train", "--data-root", str(root), *ARGS, "--max-steps", "2", "-o", str(tmp_path / "part")])
    assert part.exit_code == 0, part.output
    # Resumed without --max-steps, the saved cap of 2 stands: nothing more is trained.
    capped = runner.invoke(cli, ["train", "--data-root", str(root), "--diagnostics-clips", "4", "--resume", str(tmp_path / "part")])
    assert capped.exit_code == 0, capped.output
    assert json.loads(capped.stdout.strip().splitlines()[-1])["total_step"] == 2
    assert len(_steps(tmp_path / "part")) == 2
    # No --epochs on resume: the saved run's 2 epochs stand (not the default recipe's budget).
    resumed = runner.invoke(cli, ["train", "--data-root", str(root), "--max-steps", "3",
                                  "--diagnostics-clips", "4", "--resume", str(tmp_path / "part")])
    assert resumed.exit_code == 0, resumed.output
    assert _steps(tmp_path / "part") == _steps(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["Encoder_parameters"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["Encoder_parameters"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epoch"] == summary["epoch"]
    changed = runner.invoke(cli, ["train", "--data-root", str(root), "--epochs", "2", "--lr", "0.1",
                                  "--resume", str(tmp_path / "part")])
    # A changed setting is a usage error naming the flag with its saved and given value.
    assert changed.exit_code == 2 and "--lr (saved 0.0004, given 0.1)" in changed.output


def test_train_cli_missing_zip_is_one_line_error(tmp_path):
    root = tmp_path / "data"
    write_pretrain(root)
    next(root.rglob("qqqqqqqqqqq.zip")).unlink()
    result = CliRunner().invoke(cli, ["train", "--data-root", str(root), *ARGS, "-o", str(tmp_path / "r")])
    assert result.exit_code == 1
    lines = [x for x in result.output.splitlines() if x.startswith("Error")]
    assert len(lines) == 1 and "qqqqqqqqqqq" in lines[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").glob("*.pt"))


def test_default_recipe_is_the_shared_codes_one_and_is_recorded(tmp_path):
    import os

    from hdcid.training import NORMALIZATION_KEY, RECIPES

    root = tmp_path / "data"
    write_pretrain(root)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data-root", str(root), "--levels", "1", "--max-steps", "1",
                                      "--diagnostics-clips", "4", "-o", str(run)])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    recipe = RECIPES["shared-codes"]
    assert config["recipe"] == "shared-codes"
    assert (config["batch_size"], config["video_output_dim"], config["n_embeddings"]) == (16, 64, 400)
    assert config["remedies"] == recipe.remedies.as_dict() and config["level2_start"] == 0
    assert config["remedies"]["code_usage_per_prompt"] == 2.0 and config["remedies"]["reset_patience"] == "off"
    assert config["epochs"] == recipe.max_epochs  # a 1-step-per-epoch corpus: the budget caps at 30
    saved = torch.load(run / "last.pt", weights_only=True)
    assert NORMALIZATION_KEY in saved and saved["Encoder_parameters"]["Cross_quantizer.embedding"].shape == (400, 256)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "last.pt", "metrics.jsonl"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# Every setting given explicitly, in the spellings a user would type (4e-4, 1, auto...).
EXPLICIT = [*ARGS, "--recipe", "small-corpus", "--level2-weight", "0.3", "--lr", "4e-4", "--mi-lr", "0.001",
            "--clip", "0.5", "--dtype", "float32", "--device", "cpu", "--standardize-inputs", "--codebook-init",
            "kmeans", "--reset-patience", "auto", "--ema-consistent", "--align-weight", "1", "--align-distance",
            "cosine", "--gap-weight", "0", "--warmup-steps", "100", "--save-every", "1"]


def test_rerunning_the_same_command_with_resume_continues_exactly(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_pretrain(root)
    runner = CliRunner()
    full = runner.invoke(cli, ["train", "--data-root", str(root), *EXPLICIT, "-o", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    real_step = Trainer.train_step
    done = []

    def interrupted_step(self, rows):
        if len(done) == 3:
            raise KeyboardInterrupt  # as Ctrl-C after three steps (last.pt is saved every step)
        done.append(rows)
        return real_step(self, rows)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    command = ["train", "--data-root", str(root), *EXPLICIT, "-o", str(tmp_path / "run")]
    stopped = runner.invoke(cli, command)
    assert stopped.exit_code == 130 and len(_steps(tmp_path / "run")) == 3
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = runner.invoke(cli, [*command, "--resume", str(tmp_path / "run")])
    assert resumed.exit_code == 0, resumed.output
    assert _steps(tmp_path / "run") == _steps(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["Encoder_parameters"]
    b = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["Encoder_parameters"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_non_path_option_is_a_library_setting():
    paths = {"data_root", "paired", "csv_path", "audio_dir", "video_dir", "text_features", "output", "resume", "init_from", "force", "help", "tensorboard",
             "nproc"}  # --nproc launches processes; each trains with the settings
    names = {p.name for p in cli.commands["train"].params}
    assert names - paths <= set(SETTINGS)
