"""What defines a pretraining run: the small-corpus remedies, the named recipes, TrainConfig, and
the rules for settings — the defaults of a new run and what may change when a run is resumed.

It imports no torch (the command line reads the recipes for its help text before any work).

Settings have one flat namespace: every TrainConfig field except `remedies`, plus every Remedies
field (the names do not overlap). Errors name them with `settings=(...)` so each front end can
spell them its own way (the command line as flags).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from hdcid.errors import ModelError, SettingsError, literal
from hdcid.vocabulary import (
    ALIGN_DISTANCES,
    CODEBOOK_INITS,
    DEFAULT_DEVICE,
    DEFAULT_DTYPE,
    DTYPES,
    FCID_FAMILY,
    METHOD_LEVELS,
    PUBLISHED_BATCH_SIZE,
    PUBLISHED_SIZES,
    RESET_PATIENCE_WORDS,
    RESET_SOURCES,
    SWAP_TARGETS,
    family_for,
    torch_dtype,
)

SMALL_CORPUS_STEP_BUDGET = 400  # optimizer steps the small-corpus recipe aims for by default
# Far above the published sizes (400 codes x 256, widths up to 2048, batch 80) and far below
# what would exhaust memory before the first step.
MAX_SIZES = {
    "n_embeddings": 1 << 16, "embedding_dim": 1 << 13, "audio_output_dim": 1 << 14, "video_output_dim": 1 << 14,
    "text_output_dim": 1 << 14, "batch_size": 1 << 16, "mi_iters": 1000,
}
MAX_CODEBOOK_ENTRIES = 1 << 24

MAX_SWAP_ITERATIONS = 1000

# Dead-code reset patience: the published 300 / 100 batches, one epoch, never, or a number of batches.
ResetPatience = int | Literal["reference", "auto", "off"]


def parse_reset_patience(value: Any) -> ResetPatience:
    """"reference", "auto", "off", or a whole number of batches (given as an int or as digits)."""
    if value in RESET_PATIENCE_WORDS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ModelError(f"{{}} must be reference, auto, off or an integer, got {literal(repr(value))}", settings=("reset_patience",))


@dataclass(frozen=True)
class Remedies:
    """Small-corpus remedies; every field at its default reproduces the published recipe."""

    standardize_inputs: bool = False  # z-score audio / video channels with stored corpus statistics
    codebook_init: str = "uniform"  # uniform (reference) | sample | kmeans (from semantic features)
    reset_patience: ResetPatience = "reference"  # reference (300/100 batches) | auto (one epoch) | off | batches
    ema_consistent: bool = False  # EMA counts/weights start (and are reset) consistent with the codes
    align_weight: float = 0.0  # weight of the InfoNCE alignment between modalities' semantic features
    align_temperature: float = 0.1
    align_distance: str = "cosine"  # cosine | euclidean (pulls paired features to one point)
    gap_weight: float = 0.0  # weight of the modality-gap term (squared centroid distance / norm²)
    warmup_steps: int = 0  # linear warm-up of the CLUB and commitment loss weights
    # Code sharing: paired audio and video seconds on the same code ids (docs/training.md).
    code_match_weight: float = 0.0  # symmetric cross-entropy of paired segments' soft code assignments
    code_match_temperature: float = 0.1
    code_usage_weight: float = 0.0  # minus this × entropy of the batch's mean soft assignment, or the floor's weight
    # > 0: the usage term is a floor instead, at this many codes per distinct text prompt in the
    # batch — the number of concepts follows the corpus (without text: no floor, the plain term).
    code_usage_per_prompt: float = 0.0
    cosine_codes: bool = False  # unit-length codebook rows, features pulled by direction
    reset_source: str = "active"  # active (reference: copy an active code) | paired (a/v pair mean)
    reset_shared_only: bool = False  # a code is dead unless audio and video both used it
    reset_limit: int = 0  # at most this many dead codes revived per batch (0: all)
    # H-DCID: level 2 rebuilds level 1's specific features; detached, they cannot be shrunk to a
    # constant that level 2 rebuilds for free (the level-2 collapse, docs/training.md).
    detach_level2_targets: bool = False
    # Swapped code prediction (hdcid/swapped_codes.py): each modality's soft code assignment
    # predicts the other's balanced one; needs neither text nor a usage floor (docs/training.md).
    swap_weight: float = 0.0  # weight of the term (0: off)
    # H-DCID: also on level 2. Off: level 2 holds the modality-specific rest, and on the planted
    # corpora the term there collapsed level 2 to one code (docs/training.md).
    swap_level2: bool = False
    swap_temperature: float = 0.1  # τ of the predicted assignments
    swap_target_temperature: float = 0.05  # ε of the balanced targets
    swap_iterations: int = 3  # Sinkhorn–Knopp iterations
    swap_queue: int = 0  # recent paired positions (earlier batches) that join the targets (0: none)
    # The targets' code prior: (1 − λ)·usage^α / Σ usage^α + λ/K with the codebook's running usage
    # (its EMA counts); α = 0 is equipartition. α 1, λ 0.1: the best of the priors measured on
    # the planted corpora (docs/training.md).
    swap_prior_power: float = 1.0  # α
    swap_prior_uniform: float = 0.1  # λ
    swap_targets: str = "sinkhorn"  # sinkhorn (balanced) | centring (DINO-style centred, sharpened)

    def __post_init__(self) -> None:
        # Parsed once here; "12" (from a command line or an older checkpoint) becomes 12.
        object.__setattr__(self, "reset_patience", parse_reset_patience(self.reset_patience))

    def as_dict(self) -> dict[str, Any]:
        """The stored form (config.json, checkpoints): the patience as text, as it always was."""
        out = asdict(self)
        out["reset_patience"] = str(self.reset_patience)
        return out


REMEDY_SETTINGS = tuple(f.name for f in fields(Remedies))


@dataclass(frozen=True)
class Recipe:
    """A named training preset: the remedies plus the batch size, specific-feature widths and
    schedule they were measured with. Explicit settings override any of them."""

    name: str
    remedies: Remedies
    batch_size: int
    audio_output_dim: int
    video_output_dim: int
    text_output_dim: int
    epochs: dict[int | str, int]  # levels (or "fcid") → epochs, when the corpus size does not decide
    step_budget: int | None = None  # if set: epochs = enough to reach this many steps (capped)
    max_epochs: int = 30
    level2_start: int = 3  # H-DCID: first epoch whose loss includes level 2 (published: 3)
    fcid_remedies: Remedies | None = None  # what FCID (one vector per clip) gets instead, if not these
    # The recipe a corpus without text trains with instead, if not this one (its name is recorded).
    no_text: Recipe | None = None

    def default_epochs(self, levels: int, n_clips: int, batch_size: int | None = None, method: str | None = None) -> int:
        """Epochs when none are given: the published counts, or a step budget on a small corpus."""
        published = self.epochs.get(method, self.epochs[levels]) if method else self.epochs[levels]
        if self.step_budget is None:
            return published
        steps_per_epoch = max(1, math.ceil(n_clips / (batch_size or self.batch_size)))
        return max(published, min(self.max_epochs, math.ceil(self.step_budget / steps_per_epoch)))

    def config_values(self) -> dict[str, Any]:
        """The TrainConfig fields this recipe sets (epochs excluded: see default_epochs)."""
        return {
            "remedies": self.remedies, "batch_size": self.batch_size,
            "audio_output_dim": self.audio_output_dim, "video_output_dim": self.video_output_dim,
            "text_output_dim": self.text_output_dim, "level2_start": self.level2_start,
        }


# Every small-corpus remedy on (benchmarks/results/small_corpus.md), no code sharing (the
# default, "shared-codes" below, adds it; this was the default before). The shared codebook
# keeps the published 400 x 256 shape, but the modality-specific branches, which only feed
# reconstruction and CLUB, shrink to 64 wide — the published 2048-wide video branch costs about
# a minute per batch of 80 on a 2-core CPU. Batch 16 and a step budget give a few hundred clips
# enough optimizer steps.
SMALL_CORPUS = Recipe(
    "small-corpus",
    Remedies(
        standardize_inputs=True, codebook_init="kmeans", reset_patience="auto", ema_consistent=True,
        align_weight=1.0, warmup_steps=100,
    ),
    batch_size=16, audio_output_dim=64, video_output_dim=64, text_output_dim=64,
    epochs={1: 3, 2: 3}, step_budget=SMALL_CORPUS_STEP_BUDGET,
)

RECIPES: dict[str, Recipe] = {
    # The published DCID / H-DCID / FCID pretraining: sizes of the released checkpoints, batch 80,
    # 6 DCID / 5 H-DCID / 4 FCID epochs, no remedies.
    "reference": Recipe(
        "reference", Remedies(), batch_size=PUBLISHED_BATCH_SIZE, audio_output_dim=PUBLISHED_SIZES["audio_output_dim"],
        video_output_dim=PUBLISHED_SIZES["video_output_dim"], text_output_dim=PUBLISHED_SIZES["text_output_dim"],
        epochs={1: 6, 2: 5, "fcid": 4},
    ),
    "small-corpus": SMALL_CORPUS,
    # small-corpus plus the code-sharing settings (docs/training.md, "Code sharing"), so that
    # paired audio and video land on the same code ids: code matching with a usage floor, no
    # dead-code resets (a revived copy of a shared code splits it in two) and a level 2 that
    # keeps its inputs informative. The usage floor asks for 2 codes per distinct text prompt in
    # the batch, so the number of codes follows the corpus' concepts: a fixed usage weight (the
    # plain term, 1.5) chosen on 10-class corpora left about one code per category on the
    # 52-category synthetic corpus, and look-alike categories merged
    # (benchmarks/results/unified_codes.md). Weight 3 holds the floor: below it the floor pushes
    # as the plain term at that weight would, above it not at all.
    "shared-codes": replace(
        SMALL_CORPUS,
        name="shared-codes",
        remedies=replace(
            SMALL_CORPUS.remedies, code_match_weight=1.0, code_usage_weight=3.0, code_usage_per_prompt=2.0,
            reset_patience="off", detach_level2_targets=True,
        ),
        # Level 2 from the first step: before it enters the loss, the video branch that feeds it
        # is trained by the CLUB bound alone, which a constant minimises.
        level2_start=0,
        # FCID quantizes one vector per clip: per-second code matching does not apply, and the
        # no-reset policy was measured with it only. FCID gets the small-corpus remedies.
        fcid_remedies=SMALL_CORPUS.remedies,
        # Without text the floor has no prompts to count, and no way of sharing codes we measured
        # kept the transfer of small-corpus: a floor of 1 or 2 codes per clip collapsed spoken
        # digits to 6-7 codes (every head 13-32%), the plain usage term at weight 3 kept the
        # code-id transfer of small-corpus but lost 10-18 points in the codeword heads there, and
        # on the own-data corpus it was level with small-corpus (91.7 / 90.0% against 92.2 /
        # 91.7%, linear) (benchmarks/results/unified_codes.md, own_data.md).
        no_text=SMALL_CORPUS,
    ),
}
# small-corpus plus the swapped code prediction (docs/training.md, "Swapped code prediction"):
# paired audio and video share code ids without text prompts and without a usage floor, so a
# corpus without text trains with it too. No dead-code resets: a reset revives a dead code as a
# copy of an active one, which splits a shared code in two (on the planted corpora the term with
# one-epoch resets kept κ at 0.05-0.10). Off in every other recipe until measured on real corpora.
RECIPES["swapped-codes"] = replace(
    SMALL_CORPUS, name="swapped-codes",
    remedies=replace(SMALL_CORPUS.remedies, swap_weight=1.0, reset_patience="off"),
)
DEFAULT_RECIPE = "shared-codes"
NEW_RUN_LEVELS = 2  # a new run trains H-DCID unless told otherwise

# Settings that may differ between a run and its resumption: how long it runs, how often it
# saves, where it runs and how much it diagnoses. Everything else defines the model and the
# recipe and must stay as saved.
RESUMABLE_SETTINGS = ("epochs", "max_steps", "save_every", "device", "diagnostics_clips")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a pretraining run. The field defaults are the published recipe;
    `TrainConfig.from_settings()` / `from_recipe()` (what `toc train` uses) start from a preset."""

    levels: int = 1
    epochs: int = 6
    max_steps: int | None = None  # stop after this many optimizer steps in total
    batch_size: int = PUBLISHED_BATCH_SIZE
    seed: int = 43
    device: str = DEFAULT_DEVICE
    dtype: str = DEFAULT_DTYPE
    reference_forwards: bool = False  # H-DCID: run the encoder 6x per batch as the published code
    save_every: int = 0  # also write last.pt every N steps (0: only at epoch ends and run end)
    level2_start: int = 3
    level2_weight: float = 0.3
    n_embeddings: int = PUBLISHED_SIZES["n_embeddings"]
    embedding_dim: int = PUBLISHED_SIZES["embedding_dim"]
    audio_output_dim: int = PUBLISHED_SIZES["audio_output_dim"]
    video_output_dim: int = PUBLISHED_SIZES["video_output_dim"]
    text_output_dim: int = PUBLISHED_SIZES["text_output_dim"]
    lr: float = 4e-4
    mi_lr: float = 1e-3
    clip: float = 0.5
    mi_iters: int = 5
    diagnostics_clips: int = 1024  # clips used for the per-epoch diagnostics (0: none)
    remedies: Remedies = field(default_factory=Remedies)
    recipe: str = ""  # the preset the run started from (informational; the fields above decide)
    method: str | None = None  # dcid / hdcid / fcid (hdcid.vocabulary.METHODS); None: by `levels`

    def validate(self) -> None:
        if self.levels not in (1, 2):
            raise ModelError(f"{{}} must be 1 (DCID) or 2 (H-DCID), got {literal(self.levels)}", settings=("levels",))
        if self.method is not None and self.method not in METHOD_LEVELS:
            raise ModelError(
                f"{{}} must be one of {', '.join(METHOD_LEVELS)}, got {literal(repr(self.method))}", settings=("method",),
            )
        if self.method is not None and METHOD_LEVELS[self.method] != self.levels:
            raise SettingsError(
                f"{{}} {self.method} has {METHOD_LEVELS[self.method]} codebook level(s); got {{}} {literal(self.levels)}",
                settings=("method", "levels"),
            )
        if self.method == "fcid" and self.embedding_dim != 256:
            raise ModelError(
                f"FCID fixes the code width (and every internal width) at 256 as the reference; got {{}} "
                f"{literal(self.embedding_dim)}",
                settings=("embedding_dim",),
            )
        if self.levels == 1 and self.embedding_dim != 256:
            raise ModelError(
                f"DCID ({{}} 1) fixes the code width at 256 as the reference; got {{}} "
                f"{literal(self.embedding_dim)} (use {{}} 2 for another width)",
                settings=("levels", "embedding_dim", "levels"),
            )
        for name in ("epochs", "batch_size", "n_embeddings", "embedding_dim", "audio_output_dim",
                     "video_output_dim", "text_output_dim", "mi_iters"):
            if getattr(self, name) < 1:
                raise ModelError(f"{{}} must be >= 1, got {literal(getattr(self, name))}", settings=(name,))
        if self.embedding_dim % 4:
            raise ModelError(
                f"{{}} must be a multiple of the 4 attention heads, got {literal(self.embedding_dim)}",
                settings=("embedding_dim",),
            )
        if self.video_output_dim < 2:
            raise ModelError(f"{{}} must be >= 2, got {literal(self.video_output_dim)}", settings=("video_output_dim",))
        if self.max_steps is not None and self.max_steps < 1:
            raise ModelError(f"{{}} must be >= 1, got {literal(self.max_steps)}", settings=("max_steps",))
        if self.dtype not in DTYPES:
            raise ModelError(f"{{}} must be float32 or float64, got {literal(self.dtype)}", settings=("dtype",))
        r = self.remedies
        if r.codebook_init not in CODEBOOK_INITS:
            raise ModelError(
                f"{{}} must be uniform, sample or kmeans, got {literal(repr(r.codebook_init))}",
                settings=("codebook_init",),
            )
        if r.align_distance not in ALIGN_DISTANCES:
            raise ModelError(
                f"{{}} must be cosine or euclidean, got {literal(repr(r.align_distance))}",
                settings=("align_distance",),
            )
        if r.gap_weight < 0:
            raise ModelError(f"{{}} must be >= 0, got {literal(r.gap_weight)}", settings=("gap_weight",))
        if r.align_temperature <= 0:
            raise ModelError(f"{{}} must be > 0, got {literal(r.align_temperature)}", settings=("align_temperature",))
        self._validate_code_sharing()
        self._validate_ranges()

    def _validate_code_sharing(self) -> None:
        r = self.remedies
        if r.reset_source not in RESET_SOURCES:
            raise ModelError(
                f"{{}} must be one of {', '.join(RESET_SOURCES)}, got {literal(repr(r.reset_source))}",
                settings=("reset_source",),
            )
        if isinstance(r.reset_limit, bool) or not isinstance(r.reset_limit, int) or r.reset_limit < 0:
            raise ModelError(f"{{}} must be a whole number >= 0, got {literal(r.reset_limit)}", settings=("reset_limit",))
        if r.code_usage_per_prompt > 0 and r.code_usage_weight == 0:
            raise SettingsError(
                "{} sets the floor of the usage term; give {} > 0 too",
                settings=("code_usage_per_prompt", "code_usage_weight"),
            )
        if r.code_usage_weight > 0 and r.code_match_weight == 0:
            raise SettingsError(
                "{} is part of the code-matching term; give {} > 0 too",
                settings=("code_usage_weight", "code_match_weight"),
            )
        if r.swap_targets not in SWAP_TARGETS:
            raise ModelError(
                f"{{}} must be one of {', '.join(SWAP_TARGETS)}, got {literal(repr(r.swap_targets))}",
                settings=("swap_targets",),
            )
        for name, value in (("swap_iterations", r.swap_iterations), ("swap_queue", r.swap_queue)):
            least = 1 if name == "swap_iterations" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ModelError(f"{{}} must be a whole number >= {least}, got {literal(value)}", settings=(name,))
        if r.swap_iterations > MAX_SWAP_ITERATIONS:
            raise ModelError(
                f"{{}} must be at most {MAX_SWAP_ITERATIONS}, got {literal(r.swap_iterations)}", settings=("swap_iterations",),
            )
        if r.code_match_weight > 0 and self.method == "fcid":
            raise SettingsError(
                "{} matches per-second audio and video codes; FCID quantizes one vector per clip",
                settings=("code_match_weight",),
            )

    def _validate_ranges(self) -> None:
        """Numbers that would train nothing (NaN rates, a negative clip) or could not be built
        (a codebook of 1e8 codes needs tens of GB) are refused before any data is read."""
        positive = ("lr", "mi_lr", "clip", "code_match_temperature", "swap_temperature", "swap_target_temperature")
        non_negative = ("level2_weight", "align_weight", "gap_weight", "align_temperature", "code_match_weight",
                        "code_usage_weight", "code_usage_per_prompt", "swap_weight", "swap_prior_power",
                        "swap_prior_uniform")
        for name in (*positive, *non_negative):
            value = self.setting(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ModelError(f"{{}} must be a finite number, got {literal(value)}", settings=(name,))
            if (value <= 0) if name in positive else (value < 0):
                bound = "> 0" if name in positive else ">= 0"
                raise ModelError(f"{{}} must be {bound}, got {literal(value)}", settings=(name,))
        for name, limit in MAX_SIZES.items():
            value = getattr(self, name)
            if value > limit:
                raise ModelError(f"{{}} must be at most {limit:,}, got {literal(value)}", settings=(name,))
        if self.remedies.swap_prior_uniform > 1.0:
            raise ModelError(
                f"{{}} must be at most 1 (a share), got {literal(self.remedies.swap_prior_uniform)}",
                settings=("swap_prior_uniform",),
            )
        queued = self.levels * 2 * self.remedies.swap_queue * self.embedding_dim
        if queued > MAX_CODEBOOK_ENTRIES:
            raise ModelError(
                f"the swapped-codes queue would hold {queued:,} values ({{}} {self.remedies.swap_queue} x 2 modalities x "
                f"{{}} {self.embedding_dim} x {self.levels} level(s)); at most {MAX_CODEBOOK_ENTRIES:,} are supported",
                settings=("swap_queue", "embedding_dim"),
            )
        entries = self.levels * self.n_embeddings * self.embedding_dim
        if entries > MAX_CODEBOOK_ENTRIES:
            raise ModelError(
                f"the codebook would hold {entries:,} values ({{}} {self.n_embeddings} x {{}} {self.embedding_dim} "
                f"x {self.levels} level(s)); at most {MAX_CODEBOOK_ENTRIES:,} are supported",
                settings=("n_embeddings", "embedding_dim"),
            )

    @property
    def torch_dtype(self):  # -> torch.dtype
        return torch_dtype(self.dtype)

    @property
    def model_family(self) -> str:
        """The encoder family the run builds (hdcid.vocabulary): FCID, or DCID / H-DCID by levels."""
        return FCID_FAMILY if self.method == "fcid" else family_for(self.levels)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["remedies"] = self.remedies.as_dict()
        return out

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """Every setting by its flat name (config fields and remedies)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "remedies"}
        out.update({name: getattr(self.remedies, name) for name in REMEDY_SETTINGS})
        return out

    def setting(self, name: str) -> Any:
        return getattr(self.remedies if name in REMEDY_SETTINGS else self, name)

    def with_settings(self, given: Mapping[str, Any]) -> TrainConfig:
        """This config with the given settings (flat names) replaced."""
        _check_names(given)
        remedies = {k: v for k, v in given.items() if k in REMEDY_SETTINGS}
        values = {k: v for k, v in given.items() if k not in REMEDY_SETTINGS}
        return replace(self, **values, remedies=replace(self.remedies, **remedies))

    @staticmethod
    def from_settings(
        settings: Mapping[str, Any], *, n_clips: int, remedies: Remedies | None = None, has_text: bool = True,
    ) -> TrainConfig:
        """A new run's config: the recipe's preset (`recipe`, default DEFAULT_RECIPE) for a corpus
        of `n_clips` clips, with the given settings (flat names; None = not given) on top.

        `remedies`, if given, replaces the preset's remedies before single remedy settings apply.
        `has_text` False (a corpus without text): a recipe with a `no_text` preset trains with
        that one instead, and the config records its name.
        """
        given = {k: v for k, v in settings.items() if v is not None}
        _check_names(given)
        recipe = given.pop("recipe", DEFAULT_RECIPE)
        if recipe not in RECIPES:
            raise ModelError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
        preset = RECIPES[recipe]
        if not has_text and preset.no_text is not None:
            preset = preset.no_text
            recipe = preset.name
        method = given.get("method")
        levels = given.pop("levels", METHOD_LEVELS.get(method, NEW_RUN_LEVELS))
        epochs = given.pop("epochs", None)
        remedy_values = {k: given.pop(k) for k in REMEDY_SETTINGS if k in given}
        values = {**preset.config_values(), **given}
        base = remedies if remedies is not None else preset.remedies
        if remedies is None and method == "fcid" and preset.fcid_remedies is not None:
            base = preset.fcid_remedies
        values["remedies"] = replace(base, **remedy_values)
        if epochs is None:
            epochs = preset.default_epochs(levels, n_clips, values["batch_size"], method)
        return TrainConfig(levels=levels, epochs=epochs, recipe=recipe, **values)

    @staticmethod
    def from_recipe(
        recipe: str = DEFAULT_RECIPE, *, n_clips: int, levels: int = NEW_RUN_LEVELS, epochs: int | None = None,
        remedies: Remedies | None = None, has_text: bool = True, **overrides: Any,
    ) -> TrainConfig:
        """A config from a named preset (RECIPES) for a corpus of `n_clips` clips (`has_text`: see
        from_settings); keyword arguments (settings, `None` = not given) override the preset."""
        return TrainConfig.from_settings(
            {"recipe": recipe, "levels": levels, "epochs": epochs, **overrides}, n_clips=n_clips, remedies=remedies,
            has_text=has_text,
        )

    @staticmethod
    def resumed(saved: TrainConfig, given: Mapping[str, Any]) -> TrainConfig:
        """The config a resumed run continues with. `given` holds only the settings the user gave.

        Resumable settings (RESUMABLE_SETTINGS) take the given value, else the saved one; any
        other given setting must equal the saved value (so re-running the same command with
        resume works), otherwise a SettingsError names each changed setting, old and new.
        """
        given = dict(given)
        if _resolves_to(given.get("recipe"), saved.recipe):
            given["recipe"] = saved.recipe  # e.g. the default, saved as what it trains without text
        requested = saved.with_settings(given)
        changed = [
            name for name in given
            if name not in RESUMABLE_SETTINGS and requested.setting(name) != saved.setting(name)
        ]
        if changed:
            differences = ", ".join(
                f"{{}} (saved {literal(repr(saved.setting(n)))}, given {literal(repr(requested.setting(n)))})"
                for n in changed
            )
            raise SettingsError(
                f"{{}} continues the saved run, whose settings cannot change; these differ: {differences}",
                settings=("resume", *changed),
            )
        return requested

    @staticmethod
    def from_dict(data: dict) -> TrainConfig:
        known = {f.name for f in fields(TrainConfig)}
        values = {k: v for k, v in data.items() if k in known}
        values["remedies"] = Remedies(**data.get("remedies", {}))
        return TrainConfig(**values)


CONFIG_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.name != "remedies")
SETTINGS = (*CONFIG_SETTINGS, *REMEDY_SETTINGS)
# Settings whose new-run default comes from the recipe (see RECIPES) rather than a fixed value.
RECIPE_SETTINGS = (
    "epochs", "batch_size", "audio_output_dim", "video_output_dim", "text_output_dim", "level2_start", *REMEDY_SETTINGS,
)


def new_run_default(name: str) -> Any:
    """The value a new run gets for setting `name` when it is not given and no recipe decides it
    (RECIPE_SETTINGS come from the recipe)."""
    if name in RECIPE_SETTINGS:
        raise KeyError(f"{name} is decided by the recipe")
    if name == "recipe":
        return DEFAULT_RECIPE
    if name == "levels":
        return NEW_RUN_LEVELS
    for f in fields(TrainConfig):
        if f.name == name:
            return f.default
    raise KeyError(name)


def _resolves_to(given: str | None, saved: str) -> bool:
    """Whether the recipe named `given` (None: not given) trains a corpus without text as the
    saved recipe `saved` (its no-text preset)."""
    preset = RECIPES.get(given)
    return preset is not None and preset.no_text is not None and preset.no_text.name == saved


def _check_names(given: Mapping[str, Any]) -> None:
    unknown = [name for name in given if name not in SETTINGS]
    if unknown:
        raise SettingsError(f"unknown training setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(SETTINGS)}")
