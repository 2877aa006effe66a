"""Downstream heads: the reference linear heads (trained, seeded, float64) and prototype heads;
the head vocabulary (the code-id head lives in toc/eval/code_head.py)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from toc.errors import ConfigError, SettingsError
from toc.vocabulary import HEAD_BATCH_SIZE

# ---------------------------------------------------------------------- linear (reference) heads


class ClipHead(nn.Module):
    """`Semantic_Decoder`: Linear(in→in) → max over time → Linear(in→C); [B,T,in] → [B,C]."""

    def __init__(self, input_dim: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, input_dim, dtype=torch.float64)
        self.event_classifier = nn.Linear(input_dim, n_outputs, dtype=torch.float64)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.event_classifier(self.linear(features).max(dim=1).values)


class SegmentHead(nn.Module):
    """`Semantic_Decoder_AVVP`: Linear(in→in) → Linear(in→C) per segment; [B,T,in] → [B*T,C]."""

    def __init__(self, input_dim: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, input_dim, dtype=torch.float64)
        self.event_classifier = nn.Linear(input_dim, n_outputs, dtype=torch.float64)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.event_classifier(self.linear(features.reshape(-1, features.shape[-1])))


class ExpLogLoss(nn.Module):
    """−mean_rows Σ_c y_c · log_softmax(logits)_c · exp(−α_c), one learnable α_c (init 0.1) per class."""

    def __init__(self, n_outputs: int, alpha: float = 0.1):
        super().__init__()
        # float32 scalars as in the reference; they promote to float64 inside the loss.
        self.alphas = nn.ParameterList([nn.Parameter(torch.tensor(alpha)) for _ in range(n_outputs)])

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weights = torch.exp(-torch.stack(list(self.alphas))).to(logits.dtype)
        return -(targets * torch.log_softmax(logits, dim=-1) * weights).sum(dim=-1).mean()


@dataclass(frozen=True)
class LinearHeadConfig:
    """The published head recipe: Adam 4e-4, gradient clip 0.5 per module, batch 80, LR halved at epochs 10, 20, 30."""

    epochs: int
    batch_size: int = HEAD_BATCH_SIZE
    lr: float = 4e-4
    clip_norm: float = 0.5
    milestones: tuple[int, ...] = (10, 20, 30)
    gamma: float = 0.5
    clip_loss_alphas: bool = False  # AVE→AVVP clips the ExpLogLoss alphas too; AVVP does not
    # Torch threads for the optimisation steps (None: leave torch's setting). The head's matmuls
    # are small, and on a busy CPU extra threads mostly spin: 1 is often several times faster.
    threads: int | None = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"the linear head needs at least 1 epoch, got {self.epochs}")
        if self.batch_size < 1:
            raise SettingsError(f"{{}} must be at least 1, got {self.batch_size}", settings=("batch_size",))


class HeadPredictor:
    """Predictions of a trained or prototype head: class indices (clip) or positives (segment)."""

    kind: str

    def predict(self, features: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class LinearPredictor(HeadPredictor):
    def __init__(self, kind: str, module: nn.Module, batch_size: int = 1024):
        self.kind, self.module, self.batch_size = kind, module, batch_size

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """clip: int64 [N] argmax (ties → lowest index); segment: bool [N,T,C] at sigmoid > 0.5."""
        self.module.eval()
        n, steps = features.shape[:2]
        outputs = []
        for start in range(0, n, self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(features[start : start + self.batch_size]))
            logits = self.module(batch)
            if self.kind == "clip":
                outputs.append(torch.argmax(logits, dim=-1).numpy().astype(np.int64))
            else:
                outputs.append((torch.sigmoid(logits) > 0.5).numpy().reshape(-1, steps, logits.shape[-1]))
        if not outputs:
            return np.zeros((0,), np.int64) if self.kind == "clip" else np.zeros((0, steps, 0), bool)
        return np.concatenate(outputs)


@dataclass
class EpochRecord:
    epoch: int
    score: float
    metrics: dict = field(default_factory=dict)


@dataclass
class LinearHeadResult:
    """The head at the selected epoch, which epoch that was and what every epoch scored."""

    predictor: HeadPredictor  # a LinearPredictor here; head_groups' FactoredPredictor (also .module)
    best_epoch: int
    history: list[EpochRecord]

    @property
    def best(self) -> EpochRecord:
        return self.history[self.best_epoch]


FeaturesForEpoch = np.ndarray | Callable[[int], np.ndarray]
EpochJudge = Callable[[int, HeadPredictor], tuple[float, dict]]


def train_linear_head(
    kind: str,
    train_features: FeaturesForEpoch,
    train_targets: np.ndarray,
    n_outputs: int,
    config: LinearHeadConfig,
    seed: int,
    judge: EpochJudge,
) -> LinearHeadResult:
    """Train the reference head and keep the epoch `judge` scores highest (first one on ties).

    `train_features` is float64 [N,T,D] (or a function of the epoch returning it, to re-encode
    per epoch); targets are class indices int64 [N] (clip) or 0/1 float [N,T,C] (segment). The
    initial weights come from `torch.manual_seed(seed)` and the batch order from a generator of
    the same seed, so reruns on one machine give identical heads.
    """
    if kind not in ("clip", "segment"):
        raise ConfigError(f"unknown task kind {kind!r}")
    first = train_features(0) if callable(train_features) else train_features
    n, _, width = first.shape
    if n == 0:
        raise ConfigError("no training clips: the split left the training set empty")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head: nn.Module = ClipHead(width, n_outputs) if kind == "clip" else SegmentHead(width, n_outputs)
        exp_log = ExpLogLoss(n_outputs) if kind == "segment" else None
    parameters = list(head.parameters()) + (list(exp_log.parameters()) if exp_log is not None else [])
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    generator = torch.Generator().manual_seed(seed)
    if kind == "clip":
        targets = torch.from_numpy(np.asarray(train_targets, dtype=np.int64))
        loss_fn: Callable = nn.CrossEntropyLoss()
    else:
        targets = torch.from_numpy(np.asarray(train_targets, dtype=np.float64))
        bce = nn.BCEWithLogitsLoss()

        def loss_fn(logits, y):
            y = y.reshape(-1, y.shape[-1])
            return bce(logits, y) + exp_log(logits, y)

    predictor = LinearPredictor(kind, head)
    history: list[EpochRecord] = []
    best_score, best_epoch, best_state = -np.inf, 0, None
    for epoch in range(config.epochs):
        features = first if epoch == 0 or not callable(train_features) else train_features(epoch)
        x_all = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
        with torch_threads(config.threads):
            head.train()
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                rows = order[start : start + config.batch_size]
                loss = loss_fn(head(x_all[rows]), targets[rows])
                optimizer.zero_grad()
                loss.backward()
                # The reference clips each module on its own norm.
                nn.utils.clip_grad_norm_(head.parameters(), config.clip_norm)
                if exp_log is not None and config.clip_loss_alphas:
                    nn.utils.clip_grad_norm_(exp_log.parameters(), config.clip_norm)
                optimizer.step()
            scheduler.step()
            score, metrics = judge(epoch, predictor)
        history.append(EpochRecord(epoch, float(score), metrics))
        if score > best_score:
            best_score, best_epoch, best_state = score, epoch, copy.deepcopy(head.state_dict())
    if best_state is not None:
        head.load_state_dict(best_state)
    return LinearHeadResult(predictor, best_epoch, history)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` for the block (None: leave it)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- prototype heads


def cosine_matrix(features: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine similarity [N, P] in float64; a zero-norm feature or prototype has similarity 0."""
    dots = features @ prototypes.T
    norms = np.outer(np.linalg.norm(features, axis=1), np.linalg.norm(prototypes, axis=1))
    safe = np.where(norms > 0, norms, 1.0)
    return np.where(norms > 0, dots / safe, 0.0)


class ClipPrototypePredictor(HeadPredictor):
    """Nearest class prototype by cosine of time-averaged quantized vectors (no training).

    A clip's feature is the mean over its T segments of its (selected-channel) quantized
    vectors, float64. The prototype of class c is the mean of the features of the training
    clips of class c. A clip gets the class of highest cosine; ties go to the lowest class
    index; classes with no training clip are never predicted.
    """

    kind = "clip"

    def __init__(self, train_features: np.ndarray, train_targets: np.ndarray, n_classes: int):
        clip_features = np.mean(np.asarray(train_features, dtype=np.float64), axis=1)
        targets = np.asarray(train_targets, dtype=np.int64)
        if targets.size == 0:
            raise ConfigError("no training clips: the prototype head needs at least one")
        self.present = np.zeros(n_classes, dtype=bool)
        self.prototypes = np.zeros((n_classes, clip_features.shape[1]), dtype=np.float64)
        for c in range(n_classes):
            members = targets == c
            if members.any():
                self.present[c] = True
                self.prototypes[c] = np.mean(clip_features[members], axis=0)

    def scores(self, features: np.ndarray) -> np.ndarray:
        clip_features = np.mean(np.asarray(features, dtype=np.float64), axis=1)
        similarity = cosine_matrix(clip_features, self.prototypes)
        similarity[:, ~self.present] = -np.inf
        return similarity

    def predict(self, features: np.ndarray) -> np.ndarray:
        # np.argmax returns the first maximum: ties go to the lowest class index.
        return np.argmax(self.scores(features), axis=1).astype(np.int64)


class SegmentPrototypePredictor(HeadPredictor):
    """Per-segment prototypes: one per foreground class and one for background.

    Every segment is a (selected-channel) quantized vector, float64. The prototype of class c
    is the mean of the training segments where c is on; the background prototype is the mean
    of the training segments labelled background (the last label column), or, when no training
    segment is background, the mean of all training segments. A segment is positive for class
    c when its cosine to c's prototype is strictly greater than its cosine to the background
    prototype; classes without training segments are never predicted; the background column is
    predicted exactly when no foreground class is.
    """

    kind = "segment"

    def __init__(self, train_features: np.ndarray, train_labels: np.ndarray, n_classes: int):
        features = np.asarray(train_features, dtype=np.float64)
        labels = np.asarray(train_labels) > 0.5
        if labels.shape[-1] != n_classes + 1:
            raise ConfigError(f"segment labels need {n_classes + 1} columns (background last), got {labels.shape[-1]}")
        flat = features.reshape(-1, features.shape[-1])
        flat_labels = labels.reshape(-1, n_classes + 1)
        if flat.shape[0] == 0:
            raise ConfigError("no training segments: the prototype head needs at least one")
        self.n_classes = n_classes
        self.present = flat_labels[:, :n_classes].any(axis=0)
        self.prototypes = np.zeros((n_classes, flat.shape[1]), dtype=np.float64)
        for c in np.flatnonzero(self.present):
            self.prototypes[c] = np.mean(flat[flat_labels[:, c]], axis=0)
        background = flat_labels[:, n_classes]
        self.background_from_all = not background.any()
        self.background = np.mean(flat if self.background_from_all else flat[background], axis=0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        n, steps, width = features.shape
        flat = features.reshape(-1, width)
        foreground = cosine_matrix(flat, self.prototypes)
        background = cosine_matrix(flat, self.background[None, :])
        positive = (foreground > background) & self.present[None, :]
        out = np.concatenate([positive, ~positive.any(axis=1, keepdims=True)], axis=1)
        return out.reshape(n, steps, self.n_classes + 1)


