"""Zero-shot cross-modal retrieval through the unified representation: clip vectors from codes,
cosine similarity, and R@k, median / mean rank and mAP@10 with an explicit tie rule.

Clip vectors (one per item, from the codes the checkpoint's shared codebook assigns):

* `codewords` — the mean over the item's steps (seconds; word slots for text) of its codewords,
  levels concatenated level 0 first, optionally only the TOC-selected channels. FCID: the
  clip-level codeword (one code per clip: time mean, compress projector, coarse head, nearest
  code), which is what its encoder gives for a whole clip.
* `histogram` — per level the counts of each code id over the item's steps divided by the
  number of steps, levels concatenated (FCID: its per-second codes). TOC does not apply.

Ranking (ties count against the query): for a query with similarity s to the gallery, the rank
of its best relevant item is 1 + the number of irrelevant gallery items whose similarity is at
least the best relevant similarity. The full order used for mAP@10 sorts by similarity,
descending, with irrelevant items first among equal similarities, then by gallery index.
R@k = 100 · (share of queries with rank <= k); median and mean rank are over queries;
AP@10 = sum over the first 10 positions of precision@k · relevant@k, divided by
min(number of relevant items, 10); mAP@10 (%) is its mean.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from hdcid.vocabulary import DEFAULT_DTYPE
from toc.codebook.encode import EncodingSession, check_features
from toc.codebook.selection import SelectionFile
from toc.data.retrieval import RetrievalItems, RetrievalSet
from toc.errors import ConfigError, DataError
from toc.progress import Advance
from toc.vocabulary import DEFAULT_PROTOCOL, ENCODE_BATCH_SIZE, VECTOR_KINDS

RECALL_AT = (1, 5, 10)
MAP_CUTOFF = 10
MODALITY_LETTER = {"audio": "a", "video": "v", "text": "t"}


def direction_name(query: str, gallery: str) -> str:
    """a2t: audio queries against a text gallery (and so on)."""
    return f"{MODALITY_LETTER[query]}2{MODALITY_LETTER[gallery]}"


def all_directions(modalities: Sequence[str]) -> list[tuple[str, str]]:
    """Every ordered pair of two different modalities, in the order a2t, t2a, v2t, t2v, a2v, v2a."""
    order = [("audio", "text"), ("text", "audio"), ("video", "text"), ("text", "video"),
             ("audio", "video"), ("video", "audio")]
    return [(q, g) for q, g in order if q in modalities and g in modalities]


# ---------------------------------------------------------------------- metrics


def cosine_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """[Q, G] cosine similarity in float64; a zero vector has similarity 0 with everything."""
    q = np.asarray(queries, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    qn, gn = np.linalg.norm(q, axis=1), np.linalg.norm(g, axis=1)
    q = q / np.where(qn > 0, qn, 1.0)[:, None]
    g = g / np.where(gn > 0, gn, 1.0)[:, None]
    return q @ g.T


def relevance(query_groups: np.ndarray, gallery_groups: np.ndarray) -> np.ndarray:
    """[Q, G] bool: a gallery item is relevant to a query when both belong to the same group."""
    return np.asarray(query_groups)[:, None] == np.asarray(gallery_groups)[None, :]


def best_relevant_ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's best relevant item; ties with irrelevant items count against.

    Every query must have at least one relevant item.
    """
    similarity, relevant = np.asarray(similarity, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if not relevant.any(axis=1).all():
        raise ConfigError("every query needs at least one relevant gallery item")
    best = np.where(relevant, similarity, -np.inf).max(axis=1)
    return 1 + ((similarity >= best[:, None]) & ~relevant).sum(axis=1)


def ranked_order(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """[Q, G] gallery indices per query: similarity descending, irrelevant first on ties, then index."""
    similarity, relevant = np.asarray(similarity, dtype=np.float64), np.asarray(relevant, dtype=bool)
    index = np.broadcast_to(np.arange(similarity.shape[1]), similarity.shape)
    # np.lexsort sorts by the last key first.
    return np.stack([np.lexsort((index[i], relevant[i], -similarity[i])) for i in range(similarity.shape[0])])


def average_precision_at(similarity: np.ndarray, relevant: np.ndarray, cutoff: int = MAP_CUTOFF) -> np.ndarray:
    """AP@cutoff per query (fractions in [0, 1]), on the tie-pessimistic order of `ranked_order`."""
    relevant = np.asarray(relevant, dtype=bool)
    order = ranked_order(similarity, relevant)[:, :cutoff]
    hits = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    n_relevant = np.minimum(relevant.sum(axis=1), cutoff)
    return (precision * hits).sum(axis=1) / n_relevant


@dataclass(frozen=True)
class RetrievalScores:
    """R@k, median and mean rank, mAP@10 of one direction (percentages for R@k and mAP)."""

    recall: dict[int, float]
    median_rank: float
    mean_rank: float
    map_at_10: float
    n_queries: int
    n_gallery: int
    tied_queries: int  # queries whose best relevant item ties with an irrelevant one

    def as_dict(self) -> dict[str, float]:
        out = {f"R@{k}": v for k, v in self.recall.items()}
        out.update({"median_rank": self.median_rank, "mean_rank": self.mean_rank, "mAP@10": self.map_at_10})
        return out


def retrieval_scores(similarity: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = RECALL_AT) -> RetrievalScores:
    """Every retrieval metric from a [Q, G] similarity matrix and the [Q, G] relevance matrix."""
    similarity, relevant = np.asarray(similarity, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if similarity.ndim != 2 or similarity.shape != relevant.shape or similarity.size == 0:
        raise ConfigError(f"similarity {list(similarity.shape)} and relevance {list(relevant.shape)} must be equal, non-empty [Q, G]")
    if not np.isfinite(similarity).all():
        raise ConfigError("non-finite similarities")
    ranks = best_relevant_ranks(similarity, relevant)
    best = np.where(relevant, similarity, -np.inf).max(axis=1)
    tied = int((((similarity == best[:, None]) & ~relevant).any(axis=1)).sum())
    n = ranks.size
    return RetrievalScores(
        recall={int(k): 100.0 * int((ranks <= k).sum()) / n for k in ks},
        median_rank=float(np.median(ranks)),
        mean_rank=float(ranks.mean()),
        map_at_10=100.0 * float(average_precision_at(similarity, relevant).mean()),
        n_queries=n, n_gallery=int(similarity.shape[1]), tied_queries=tied,
    )


# ---------------------------------------------------------------------- clip vectors


@dataclass(frozen=True)
class EncodedItems:
    """The codes of one modality's items and what the clip vectors need from them."""

    modality: str
    groups: np.ndarray  # int64 [N]
    codes: list[list[np.ndarray]]  # per level, per item: int64 [T_i]
    mean_codewords: list[np.ndarray] | None  # per level float64 [N, D]: mean over the item's steps
    clip_codewords: np.ndarray | None = None  # FCID: float64 [N, D], the clip-level codeword
    source: str = ""

    def __len__(self) -> int:
        return int(self.groups.size)


def encode_items(
    session: EncodingSession, items: RetrievalItems, *, batch_size: int = ENCODE_BATCH_SIZE, progress: Advance | None = None,
) -> EncodedItems:
    """Encode every item with the session's frozen encoder; items are read a few batches at a
    time and those of equal shape (equal length) are encoded together."""
    n = len(items)
    codes: list[list[np.ndarray]] = [[np.zeros(0, np.int64)] * n for _ in range(session.levels)]
    means: list[np.ndarray | None] = [None] * session.levels
    clip: np.ndarray | None = None
    window = 4 * batch_size
    for first in range(0, n, window):
        arrays = {i: items.read(i) for i in range(first, min(n, first + window))}
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, x in arrays.items():
            by_shape.setdefault(tuple(x.shape), []).append(i)
        for members in by_shape.values():
            for start in range(0, len(members), batch_size):
                rows = members[start : start + batch_size]
                batch = np.stack([arrays[i] for i in rows])
                needs_lstm = check_features(session.checkpoint, items.modality, batch.shape, items.source or items.modality)
                if session.has_clip_codes:
                    per_level, (_, clip_words) = session.encode_batch_with_clip(items.modality, batch, needs_lstm=needs_lstm)
                    if clip is None:
                        clip = np.zeros((n, clip_words.shape[-1]))
                    clip[rows] = clip_words
                else:
                    per_level = session.encode_batch(items.modality, batch, needs_lstm=needs_lstm)
                for level, (level_codes, quantized) in enumerate(per_level):
                    if means[level] is None:
                        means[level] = np.zeros((n, quantized.shape[-1]))
                    means[level][rows] = np.asarray(quantized, dtype=np.float64).mean(axis=1)
                    for b, i in enumerate(rows):
                        codes[level][i] = level_codes[b]
                if progress:
                    progress(len(rows))
    return EncodedItems(items.modality, items.groups, codes, [m for m in means if m is not None], clip, items.source)


def read_encoded(path: str | Path) -> EncodedItems:
    """A `toc encode` output: `level{L}/codes` [N, T] (and `level{L}/quantized` [N, T, D], FCID's
    `clip/quantized` [N, D]); the modality is its `modality` attribute. Row i is item i."""
    path = Path(path)
    if not path.is_file():
        raise DataError("missing encoded file", file=path)
    try:
        with h5py.File(path, "r") as handle:
            modality = str(handle.attrs.get("modality", ""))
            if modality not in MODALITY_LETTER:
                raise DataError("no modality attribute", file=path, key="modality", expected="audio, video or text", actual=modality or None)
            levels = sorted(int(k[5:]) for k in handle if k.startswith("level") and k[5:].isdigit())
            if not levels or levels != list(range(len(levels))):
                raise DataError("no level groups", file=path, expected="level0/codes, ...", actual=sorted(handle))
            codes, means = [], []
            for level in levels:
                group = handle[f"level{level}"]
                if "codes" not in group:
                    raise DataError("missing dataset", file=path, key=f"level{level}/codes")
                level_codes = np.asarray(group["codes"][()])
                if level_codes.ndim != 2 or level_codes.dtype.kind not in "iu" or level_codes.shape[0] == 0:
                    raise DataError("wrong codes", file=path, key=f"level{level}/codes", expected="int [N, T]",
                                    actual=f"{level_codes.dtype} {list(level_codes.shape)}")
                if (level_codes < 0).any():
                    raise DataError("negative code ids", file=path, key=f"level{level}/codes")
                codes.append([row.astype(np.int64) for row in level_codes])
                if "quantized" in group:
                    quantized = np.asarray(group["quantized"][()], dtype=np.float64)
                    if quantized.shape[:2] != level_codes.shape or quantized.ndim != 3 or not np.isfinite(quantized).all():
                        raise DataError("wrong quantized vectors", file=path, key=f"level{level}/quantized",
                                        expected=f"finite [{level_codes.shape[0]}, {level_codes.shape[1]}, D]", actual=list(quantized.shape))
                    means.append(quantized.mean(axis=1))
            clip = None
            if "clip" in handle and "quantized" in handle["clip"]:
                clip = np.asarray(handle["clip/quantized"][()], dtype=np.float64)
                if clip.ndim != 2 or clip.shape[0] != len(codes[0]) or not np.isfinite(clip).all():
                    raise DataError("wrong clip vectors", file=path, key="clip/quantized", expected=f"finite [{len(codes[0])}, D]", actual=list(clip.shape))
    except DataError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise DataError(f"unreadable h5 file ({exc})", file=path) from None
    n = len(codes[0])
    if any(len(level) != n for level in codes):
        raise DataError("levels hold different numbers of items", file=path)
    return EncodedItems(modality, np.arange(n, dtype=np.int64), codes, means if len(means) == len(codes) else None, clip, str(path))


def clip_vectors(
    items: EncodedItems, kind: str, levels: Sequence[int], channels: Sequence[np.ndarray | None],
    n_codes: Sequence[int],
) -> np.ndarray:
    """[N, D'] float64 clip vectors of `kind` from `levels` (channels per level: None = all)."""
    if kind == "codewords":
        if items.clip_codewords is not None:
            chosen = channels[0]
            return items.clip_codewords if chosen is None else items.clip_codewords[:, chosen]
        if items.mean_codewords is None:
            raise ConfigError(f"{items.source}: no codewords to average (the file holds codes only); use histogram vectors")
        parts = [items.mean_codewords[level] if ch is None else items.mean_codewords[level][:, ch]
                 for level, ch in zip(levels, channels, strict=True)]
        return np.concatenate(parts, axis=1)
    if kind == "histogram":
        parts = []
        for level in levels:
            k = int(n_codes[level])
            counts = np.zeros((len(items), k))
            for i, item_codes in enumerate(items.codes[level]):
                counts[i] = np.bincount(item_codes, minlength=k)[:k] / max(1, item_codes.size)
            parts.append(counts)
        return np.concatenate(parts, axis=1)
    raise ConfigError(f"unknown clip vector kind {kind!r}; expected one of {', '.join(VECTOR_KINDS)}")


# ---------------------------------------------------------------------- the evaluation


@dataclass(frozen=True)
class RetrievalRecord:
    """One retrieval result line."""

    layout: str
    direction: str
    query: str
    gallery: str
    vectors: str
    variant: str
    protocol: str
    metrics: dict[str, float]
    n_queries: int
    n_gallery: int
    tied_queries: int
    levels: list[int]
    channels: list[list[int]] | None
    checkpoint_sha256: str
    dtype: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "task": "retrieval", "layout": self.layout, "direction": self.direction, "query": self.query,
            "gallery": self.gallery, "vectors": self.vectors, "variant": self.variant, "protocol": self.protocol,
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()}, "n_queries": self.n_queries,
            "n_gallery": self.n_gallery, "tied_queries": self.tied_queries, "levels": self.levels,
            "channels": self.channels, "checkpoint_sha256": self.checkpoint_sha256, "dtype": self.dtype,
            "seconds": self.seconds, "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RetrievalRun:
    """What to compute for an encoded retrieval set."""

    directions: Sequence[tuple[str, str]]
    vectors: Sequence[str] = VECTOR_KINDS
    variant: str = "dcid"
    levels: Sequence[int] = (0,)
    selection: SelectionFile | None = None  # the +toc variants' channels
    protocol: str = DEFAULT_PROTOCOL
    layout: str = "paired"
    checkpoint_sha256: str = ""
    dtype: str = DEFAULT_DTYPE
    notes: Sequence[str] = ()


def run_retrieval(encoded: dict[str, EncodedItems], n_codes: Sequence[int], run: RetrievalRun) -> Iterator[RetrievalRecord]:
    """One record per (direction, vector kind). `run.directions` are pairs of keys of `encoded`
    (modalities; two sides of one modality may use other keys)."""
    channels: list[np.ndarray | None] = [None for _ in run.levels]
    if run.selection is not None:
        per_level = run.selection.level_indices()
        for position, level in enumerate(run.levels):
            if level not in per_level:
                raise ConfigError(f"{run.selection.source}: no selection for level {level}")
            channels[position] = np.asarray(per_level[level], dtype=np.int64)
    for query_key, gallery_key in run.directions:
        if query_key not in encoded or gallery_key not in encoded:
            raise ConfigError(f"retrieval from {query_key} to {gallery_key} needs items of both")
        query, gallery = encoded[query_key].modality, encoded[gallery_key].modality
        relevant = relevance(encoded[query_key].groups, encoded[gallery_key].groups)
        answerable = relevant.any(axis=1)
        notes = list(run.notes)
        if not answerable.all():
            notes.append(f"{int((~answerable).sum())} {query} queries have no relevant {gallery} item and are left out")
        for kind in run.vectors:
            start = time.perf_counter()
            kind_channels = channels if kind == "codewords" else [None for _ in run.levels]
            q = clip_vectors(encoded[query_key], kind, run.levels, kind_channels, n_codes)[answerable]
            g = clip_vectors(encoded[gallery_key], kind, run.levels, kind_channels, n_codes)
            if q.shape[1] != g.shape[1]:
                raise ConfigError(f"{query} and {gallery} clip vectors differ in width ({q.shape[1]} vs {g.shape[1]})")
            scores = retrieval_scores(cosine_similarity(q, g), relevant[answerable])
            kind_notes = list(notes)
            if kind == "histogram" and run.selection is not None:
                kind_notes.append("TOC channels do not apply to code-id histograms")
            yield RetrievalRecord(
                layout=run.layout, direction=direction_name(query, gallery), query=query, gallery=gallery,
                vectors=kind, variant=run.variant if kind == "codewords" else run.variant.removesuffix("+toc"),
                protocol=run.protocol, metrics=scores.as_dict(), n_queries=scores.n_queries,
                n_gallery=scores.n_gallery, tied_queries=scores.tied_queries, levels=list(run.levels),
                channels=None if kind != "codewords" or all(c is None for c in kind_channels)
                else [c.tolist() if c is not None else None for c in kind_channels],
                checkpoint_sha256=run.checkpoint_sha256, dtype=run.dtype,
                seconds=round(time.perf_counter() - start, 4), notes=kind_notes,
            )


def encode_set(
    session: EncodingSession, data: RetrievalSet, modalities: Sequence[str], *, batch_size: int = ENCODE_BATCH_SIZE,
    progress=None,
) -> dict[str, EncodedItems]:
    """Encode the items of the modalities the directions need."""
    out = {}
    for modality in modalities:
        items = data.items[modality]
        if progress is None:
            out[modality] = encode_items(session, items, batch_size=batch_size)
        else:
            with progress(f"encode {data.layout} {modality}", len(items)) as advance:
                out[modality] = encode_items(session, items, batch_size=batch_size, progress=advance)
    return out
