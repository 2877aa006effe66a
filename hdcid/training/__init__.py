"""DCID / H-DCID / FCID pretraining.

- `recipes`: the remedies, the named presets, TrainConfig and the settings rules (new-run
  defaults, what a resumption may change);
- `data`: what the trainer reads from a corpus and in which order;
- `initialisation`: seeds, reset patience, warm start, input statistics, data-dependent codebooks;
- `step`: the networks of a run and one training step (named loss terms × weights);
- `fcid_step`: the same for FCID (its published terms through the same named-terms mechanism);
- `trainer`: the run loop, schedule, atomic checkpoints and exact resume;
- `runs`: one request from a front end (run directory, overwrite and resume rules) → a run.
"""

from hdcid.checkpoint_keys import CONFIG_KEY, TRAINER_KEY
from hdcid.errors import TrainDataError
from hdcid.normalization import NORMALIZATION_KEY
from hdcid.normalization import apply as apply_input_normalization
from hdcid.recipes import (
    DEFAULT_RECIPE,
    NEW_RUN_LEVELS,
    RECIPE_SETTINGS,
    RECIPES,
    RESUMABLE_SETTINGS,
    SETTINGS,
    SMALL_CORPUS_STEP_BUDGET,
    Recipe,
    Remedies,
    ResetPatience,
    TrainConfig,
    new_run_default,
    parse_reset_patience,
)
from hdcid.training.data import PretrainData
from hdcid.training.runs import TrainRequest, open_training, run_training
from hdcid.training.step import (
    CLUB_HIDDEN,
    CPC_WIDTH,
    TEXT_LSTM_HIDDEN,
    PretrainModel,
    StepResult,
    loss_weights,
    metric_name,
)
from hdcid.training.trainer import GAMMA, MILESTONES, SavedRun, Trainer, TrainResult, train
from hdcid.vocabulary import MODALITIES

__all__ = [
    "CLUB_HIDDEN", "CONFIG_KEY", "CPC_WIDTH", "DEFAULT_RECIPE", "GAMMA", "MILESTONES", "MODALITIES",
    "NEW_RUN_LEVELS", "NORMALIZATION_KEY", "RECIPES", "RECIPE_SETTINGS", "RESUMABLE_SETTINGS", "SETTINGS",
    "SMALL_CORPUS_STEP_BUDGET", "TEXT_LSTM_HIDDEN", "TRAINER_KEY", "PretrainData", "PretrainModel",
    "Recipe", "Remedies", "ResetPatience", "SavedRun", "StepResult", "TrainConfig", "TrainDataError",
    "TrainRequest", "TrainResult", "Trainer", "apply_input_normalization", "loss_weights", "metric_name",
    "new_run_default", "open_training", "parse_reset_patience", "run_training", "train",
]
