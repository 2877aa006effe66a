"""The code-id head (`--head codes`): a classifier that sees only code *ids*, never codeword vectors.

It answers the question a unified discrete representation is named for: if one modality's
training segments say which classes each code id stands for, can the other modality's codes be
read with that table? Transfer through shared ids shows up here; transfer through neighbouring
codeword vectors (what the linear and prototype heads use) does not.

Inputs are the ids of the view's codebook levels, int64 [N, T, L] (`CodeIdInputs`); each level
has its own table. With C classes, α the smoothing (1), n_kc the training segments of level l
with id k and class c, n_k = Σ_c n_kc:

* **clip tasks** — P_l(c | k) = (n_kc + α) / (n_k + α·C) for an id seen in training, the class
  prior P(c) = n_c / N for an id never seen. A clip scores, per class,
  log P(c) + Σ over its segments and levels of [log P_l(c | k) − log P(c)] — naive-Bayes
  evidence pooling, in which an unseen id adds nothing. Argmax; ties go to the lowest class
  index; classes without a training segment are never predicted. Clip labels are broadcast to
  the clip's segments when fitting, so background seconds, whose ids occur with every class,
  stay near the prior and add little.
* **segment tasks** — per foreground class c, P_l(c on | k) = (n_on + α) / (n_k + 2α) for a seen
  id, the rate P(c on) over all training segments otherwise; a segment is positive for c when
  logit P(c on) + Σ_l [logit P_l(c on | k_l) − logit P(c on)] > 0 (classes with no positive
  training segment never are); the background column is on exactly when no foreground class is,
  as the prototype head does.

Pure numpy; deterministic: the same inputs give the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from toc.errors import ConfigError
from toc.eval.cache import EncodedSet
from toc.eval.heads import HeadPredictor
from toc.eval.protocols import Rows
from toc.eval.variants import ChannelView

DEFAULT_SMOOTHING = 1.0


class CodeIdInputs:
    """What the code-id head reads in place of codeword vectors: int64 [N, T, L] ids of the
    view's levels (the channels of a +toc view do not change an id, so they are ignored)."""

    def get(self, view: ChannelView, encoded: EncodedSet, rows: Rows) -> np.ndarray:
        return np.stack([encoded.codes[level][rows.rows] for level in view.levels], axis=-1).astype(np.int64)


def code_counts(view: ChannelView, encoded: EncodedSet) -> tuple[int, ...]:
    """Codes per codebook level of the view (the size of each level's table)."""
    return tuple(int(encoded.codebooks[level].shape[0]) for level in view.levels)


def _ids(codes, n_codes: Sequence[int], name: str) -> np.ndarray:
    """[N, T] (one level) or [N, T, L] integer ids, each level's within [0, K_l)."""
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise ConfigError(f"{name}: expected integer code ids, got dtype {codes.dtype}")
    if codes.ndim == 2:
        codes = codes[..., None]
    if codes.ndim != 3 or codes.shape[2] != len(n_codes):
        raise ConfigError(f"{name}: expected ids [N, T, {len(n_codes)}], got shape {list(codes.shape)}")
    codes = codes.astype(np.int64)
    for level, k in enumerate(n_codes):
        ids = codes[..., level]
        if ids.size and (ids.min() < 0 or ids.max() >= k):
            raise ConfigError(
                f"{name}: level {level} ids must lie in [0, {k}), got {int(ids.min())}..{int(ids.max())}"
            )
    return codes


def _check_setup(n_classes: int, n_codes: Sequence[int], smoothing: float) -> None:
    if n_classes < 1 or not n_codes or min(n_codes) < 1:
        raise ConfigError(f"the code-id head needs classes and codes, got {n_classes} classes, codes {list(n_codes)}")
    if not smoothing > 0:
        raise ConfigError(f"the code-id head's smoothing must be > 0, got {smoothing}")


class ClipCodePredictor(HeadPredictor):
    """Clip classes from code ids: per-level class posteriors per id, naive-Bayes pooled."""

    kind = "clip"

    def __init__(
        self, train_ids, train_targets, n_classes: int, n_codes: Sequence[int], smoothing: float = DEFAULT_SMOOTHING,
    ):
        _check_setup(n_classes, n_codes, smoothing)
        ids = _ids(train_ids, n_codes, "training codes")
        targets = np.asarray(train_targets)
        if targets.dtype.kind not in "iu" or targets.shape != ids.shape[:1]:
            raise ConfigError(f"training labels: expected {ids.shape[0]} integer classes, got shape {list(targets.shape)}")
        if targets.size == 0:
            raise ConfigError("no training clips: the code-id head needs at least one")
        if targets.min() < 0 or targets.max() >= n_classes:
            raise ConfigError(f"training labels must lie in [0, {n_classes}), got {int(targets.min())}..{int(targets.max())}")
        self.n_codes = tuple(int(k) for k in n_codes)
        segment_classes = np.broadcast_to(targets.astype(np.int64)[:, None], ids.shape[:2])
        class_counts = np.bincount(segment_classes.ravel(), minlength=n_classes).astype(np.float64)
        self.present = class_counts > 0
        with np.errstate(divide="ignore"):
            self.log_prior = np.log(class_counts / class_counts.sum())
        # Per level: log P_l(c | k) − log P(c) for present classes, 0 for unseen ids.
        self.evidence: list[np.ndarray] = []
        self.seen: list[np.ndarray] = []
        for level, k in enumerate(self.n_codes):
            counts = np.bincount(
                ids[..., level].ravel() * n_classes + segment_classes.ravel(), minlength=k * n_classes,
            ).reshape(k, n_classes).astype(np.float64)
            per_code = counts.sum(axis=1, keepdims=True)
            seen = per_code[:, 0] > 0
            log_posterior = np.log((counts + smoothing) / (per_code + smoothing * n_classes))
            evidence = np.zeros((k, n_classes))
            evidence[np.ix_(seen, self.present)] = (log_posterior - self.log_prior[None, :])[np.ix_(seen, self.present)]
            self.evidence.append(evidence)
            self.seen.append(seen)

    def scores(self, ids) -> np.ndarray:
        """float64 [N, C]: log prior + pooled evidence; −inf for classes never seen in training."""
        ids = _ids(ids, self.n_codes, "codes")
        total = np.zeros((ids.shape[0], len(self.log_prior)))
        for level, evidence in enumerate(self.evidence):
            total += evidence[ids[..., level]].sum(axis=1)
        return np.where(self.present[None, :], total + np.where(self.present, self.log_prior, 0.0)[None, :], -np.inf)

    def predict(self, features) -> np.ndarray:
        # np.argmax returns the first maximum: ties go to the lowest class index.
        return np.argmax(self.scores(features), axis=1).astype(np.int64)


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


class SegmentCodePredictor(HeadPredictor):
    """Per-segment events from code ids: per-level P(class on | id), naive-Bayes pooled in log-odds."""

    kind = "segment"

    def __init__(
        self, train_ids, train_labels, n_classes: int, n_codes: Sequence[int], smoothing: float = DEFAULT_SMOOTHING,
    ):
        _check_setup(n_classes, n_codes, smoothing)
        ids = _ids(train_ids, n_codes, "training codes")
        labels = np.asarray(train_labels) > 0.5
        if labels.shape != (*ids.shape[:2], n_classes + 1):
            raise ConfigError(
                f"training labels: expected [N, T, {n_classes + 1}] (background last) for ids "
                f"{list(ids.shape)}, got {list(labels.shape)}"
            )
        if labels.shape[0] * labels.shape[1] == 0:
            raise ConfigError("no training segments: the code-id head needs at least one")
        self.n_classes = n_classes
        self.n_codes = tuple(int(k) for k in n_codes)
        on = labels[..., :n_classes].reshape(-1, n_classes).astype(np.float64)
        self.present = on.any(axis=0)
        rate = on.mean(axis=0)
        # Classes never on get no evidence and are masked out; keep their logit finite meanwhile.
        self.prior_logit = np.where(self.present, _logit(np.clip(rate, 1e-12, 1 - 1e-12)), 0.0)
        self.evidence: list[np.ndarray] = []
        for level, k in enumerate(self.n_codes):
            flat_ids = ids[..., level].ravel()
            n_on = np.zeros((k, n_classes))
            np.add.at(n_on, flat_ids, on)
            n_k = np.bincount(flat_ids, minlength=k).astype(np.float64)[:, None]
            seen = n_k[:, 0] > 0
            posterior_logit = _logit((n_on + smoothing) / (n_k + 2 * smoothing))
            evidence = np.where(seen[:, None], posterior_logit - self.prior_logit[None, :], 0.0)
            self.evidence.append(np.where(self.present[None, :], evidence, 0.0))

    def logits(self, ids) -> np.ndarray:
        """float64 [N, T, C]: pooled log-odds of each foreground class per segment."""
        ids = _ids(ids, self.n_codes, "codes")
        total = np.broadcast_to(self.prior_logit, (*ids.shape[:2], self.n_classes)).copy()
        for level, evidence in enumerate(self.evidence):
            total += evidence[ids[..., level]]
        return total

    def predict(self, features) -> np.ndarray:
        positive = (self.logits(features) > 0) & self.present
        return np.concatenate([positive, ~positive.any(axis=-1, keepdims=True)], axis=-1)


def fit_code_head(
    kind: str, train_ids, train_targets, n_classes: int, n_codes: Sequence[int], smoothing: float = DEFAULT_SMOOTHING,
) -> HeadPredictor:
    """The code-id head of a task kind ("clip" or "segment"), fitted on the training ids."""
    if kind == "clip":
        return ClipCodePredictor(train_ids, train_targets, n_classes, n_codes, smoothing)
    if kind == "segment":
        return SegmentCodePredictor(train_ids, train_targets, n_classes, n_codes, smoothing)
    raise ConfigError(f"unknown task kind {kind!r}")
