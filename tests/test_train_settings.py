"""Training settings: typed reset patience, new-run defaults, the resume rule and the run-dir rules."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hdcid.errors import ModelError, OutputExistsError, SettingsError
from hdcid.training import (
    DEFAULT_RECIPE,
    RECIPES,
    RESUMABLE_SETTINGS,
    SETTINGS,
    Remedies,
    TrainConfig,
    TrainRequest,
    new_run_default,
    parse_reset_patience,
)
from hdcid.training.runs import check_new_run_dir

SAVED = TrainConfig.from_recipe(n_clips=40, levels=2, max_steps=7, reset_patience="12", save_every=3)


def test_reset_patience_is_parsed_once_and_stored_as_before():
    assert [parse_reset_patience(v) for v in ("reference", "auto", "12", 12, 0)] == ["reference", "auto", 12, 12, 0]
    for bad in ("soon", "-1", True, 1.5, None):
        with pytest.raises(ModelError, match="reset_patience must be reference, auto, off or an integer"):
            parse_reset_patience(bad)
    remedies = Remedies(reset_patience="12")
    assert remedies.reset_patience == 12
    # The stored form (config.json, Train_config) keeps the text it always had.
    assert remedies.as_dict()["reset_patience"] == "12" and Remedies().as_dict()["reset_patience"] == "reference"
    assert TrainConfig.from_dict(SAVED.as_dict()) == SAVED


def test_from_settings_merges_single_remedies_onto_the_recipe():
    config = TrainConfig.from_settings({"align_weight": 0.5, "batch_size": 8, "seed": None}, n_clips=100)
    preset = RECIPES[DEFAULT_RECIPE]
    assert config.recipe == DEFAULT_RECIPE and config.levels == new_run_default("levels") == 2
    assert config.remedies == dataclasses.replace(preset.remedies, align_weight=0.5)
    assert config.batch_size == 8 and config.video_output_dim == preset.video_output_dim
    assert config.seed == new_run_default("seed") == 43  # None = not given
    assert config.epochs == preset.default_epochs(2, 100, 8)
    with pytest.raises(KeyError):
        new_run_default("batch_size")  # decided by the recipe
    with pytest.raises(SettingsError, match="unknown training setting"):
        TrainConfig.from_settings({"learning_rate": 0.1}, n_clips=100)
    assert set(SAVED.settings()) == set(SETTINGS)


def test_resuming_with_the_same_values_given_keeps_the_saved_config():
    assert TrainConfig.resumed(SAVED, {}) == SAVED
    # Every setting given explicitly, with the saved values (as a command line would give them).
    same = {**SAVED.settings(), "reset_patience": "12", "lr": float("4e-4")}
    assert TrainConfig.resumed(SAVED, same) == SAVED


def test_resumable_settings_take_the_given_value_else_the_saved_one():
    resumed = TrainConfig.resumed(SAVED, {"epochs": 9, "device": "cpu"})
    assert (resumed.epochs, resumed.max_steps, resumed.save_every) == (9, 7, 3)  # the saved cap stands
    lifted = TrainConfig.resumed(SAVED, {"max_steps": 20, "save_every": 0, "diagnostics_clips": 0})
    assert (lifted.max_steps, lifted.save_every, lifted.diagnostics_clips) == (20, 0, 0)
    assert set(RESUMABLE_SETTINGS) == {"epochs", "max_steps", "save_every", "device", "diagnostics_clips"}


def test_a_changed_setting_is_refused_naming_each_with_old_and_new_value():
    with pytest.raises(SettingsError) as caught:
        TrainConfig.resumed(SAVED, {"lr": 0.1, "seed": SAVED.seed, "align_weight": 0.0, "epochs": 2})
    error = caught.value
    assert error.settings == ("resume", "lr", "align_weight")
    assert "lr (saved 0.0004, given 0.1)" in str(error)
    assert "align_weight (saved 1.0, given 0.0)" in str(error)
    assert "--lr (saved 0.0004, given 0.1)" in error.render(lambda name: "--" + name.replace("_", "-"))
    with pytest.raises(SettingsError, match="reset_patience"):
        TrainConfig.resumed(SAVED, {"reset_patience": "auto"})


def test_run_dir_rules(tmp_path):
    with pytest.raises(SettingsError, match="give output RUN_DIR"):
        TrainRequest().run_dir()
    with pytest.raises(SettingsError, match="resume continues in its own RUN_DIR"):
        TrainRequest(output=tmp_path / "a", resume=tmp_path / "b").run_dir()
    assert TrainRequest(output=tmp_path / "a", resume=tmp_path / "a").run_dir() == tmp_path / "a"
    run = tmp_path / "run{1}"
    check_new_run_dir(run, force=False)  # absent: fine
    run.mkdir()
    torch.save({}, run / "last.pt")
    with pytest.raises(OutputExistsError) as caught:
        check_new_run_dir(run, force=False)
    assert str(caught.value) == f"{run}: already holds a run; pass resume {run} to continue or force"
    check_new_run_dir(run, force=True)
