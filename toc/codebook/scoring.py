"""TOC channel scores in one streaming pass: mean pairwise co-activation and variance per channel."""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmg_base.errors import literal
from toc.codebook.settings import DEFAULT_SIM_WEIGHT, DEFAULT_VAR_WEIGHT
from toc.errors import TocError

# Just under torch's parallel grain size (32768 elements): ops on smaller tensors run inline on
# the calling thread. At or above it every small op forks and joins the thread pool, which costs
# more than it saves and stalls badly (seconds) when the cores are busy with other work.
CHUNK_ELEMENTS = 32767
# Chunk statistics are merged this many at a time, so the merge adds few ops per chunk.
MERGE_GROUP = 64

_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class ScoringError(TocError):
    """A codebook that cannot be scored: wrong shape, non-float, too few codes or non-finite."""


@dataclass(frozen=True)
class ChannelScores:
    """Per-channel TOC statistics of one codebook; every field is a float64 CPU tensor [D].

    similarity[d] is the mean of E[i,d]*E[j,d] over ordered pairs i != j, variance[d] the
    unbiased column variance, score = -sim_weight*similarity + var_weight*variance.
    """

    similarity: torch.Tensor
    variance: torch.Tensor
    score: torch.Tensor
    n_codes: int
    sim_weight: float
    var_weight: float

    @property
    def n_channels(self) -> int:
        return int(self.score.shape[0])


def _shape_of(codebook: Any) -> tuple[int, ...]:
    shape = getattr(codebook, "shape", None)
    if shape is None:
        raise ScoringError(
            f"codebook must be a tensor or array, got {type(codebook).__name__}"
        )
    return tuple(int(s) for s in shape)


def _check_float_dtype(codebook: Any, where: str) -> None:
    if torch.is_tensor(codebook):
        if codebook.dtype not in _TORCH_FLOATS:
            raise ScoringError(
                f"{where}: codebook must hold floats (expected a float dtype, "
                f"got {str(codebook.dtype).replace('torch.', '')})"
            )
        return
    dtype = np.dtype(codebook.dtype)
    if dtype.kind != "f":
        raise ScoringError(
            f"{where}: codebook must hold floats (expected a float dtype, got {dtype.name})"
        )


def default_chunk_rows(n_channels: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, n_channels))


def _group_moments(codebook: Any, start: int, stop: int, rows: int, d: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(count, mean, M2) of rows [start, stop), read chunk by chunk into one float64 buffer.

    Each chunk is reduced exactly (two passes over the cached chunk: mean, then squared
    deviations); the chunk statistics are combined with Chan, Golub & LeVeque's formula.
    """
    with torch.no_grad():
        work = torch.empty((min(rows, stop - start), d), dtype=torch.float64)
        work_np = work.numpy()
        chunks = -(-(stop - start) // rows)
        sums = torch.empty((chunks, d), dtype=torch.float64)
        m2s = torch.empty((chunks, d), dtype=torch.float64)
        counts: list[int] = []
        is_tensor = torch.is_tensor(codebook)
        for slot, first in enumerate(range(start, stop, rows)):
            last = min(first + rows, stop)
            count = last - first
            block = work if count == work.shape[0] else work[:count]
            if is_tensor:
                block.copy_(codebook[first:last])
            else:
                # numpy arrays, memmaps and h5py datasets all slice to a numpy array of this chunk.
                np.copyto(work_np[:count], np.asarray(codebook[first:last]), casting="same_kind")
            block_sum, block_m2 = sums[slot], m2s[slot]
            torch.sum(block, 0, out=block_sum)
            block.sub_(block_sum, alpha=1.0 / count)
            block.mul_(block)
            torch.sum(block, 0, out=block_m2)
            counts.append(count)
        total = stop - start
        mean = sums.sum(0).div_(total)
        if chunks == 1:
            return total, mean, m2s[0].clone()
        weights = torch.tensor(counts, dtype=torch.float64).unsqueeze(1)
        spread = (sums / weights).sub_(mean)
        m2 = m2s.sum(0).add_((spread * spread).mul_(weights).sum(0))
        return total, mean, m2


def _merge(
    running: tuple[int, torch.Tensor, torch.Tensor] | None, part: tuple[int, torch.Tensor, torch.Tensor]
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Chan et al.'s pairwise update of (count, mean, M2)."""
    if running is None:
        return part
    seen, mean, m2 = running
    count, part_mean, part_m2 = part
    total = seen + count
    delta = part_mean - mean
    new_mean = mean.add(delta, alpha=count / total)
    new_m2 = (m2 + part_m2).add_(delta.mul_(delta), alpha=seen * count / total)
    return total, new_mean, new_m2


def _one_intra_op_thread() -> None:
    # OpenMP keeps the thread count per thread: this affects only our pool's threads, so their
    # ops never fork a nested team on top of the pool.
    torch.set_num_threads(1)


def _column_moments(codebook: Any, n: int, d: int, chunk_rows: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column mean and M2 = sum((x - mean)^2) in float64, one pass over the rows.

    Rows are cut into groups of MERGE_GROUP chunks. Groups may be reduced on several threads
    (torch releases the GIL inside each op), but they are always merged in row order, so the
    result is bit-identical whatever the number of threads. At most 2 x workers groups are in
    flight, so extra memory stays independent of N.
    """
    rows = min(chunk_rows, n)
    group_rows = rows * max(1, min(MERGE_GROUP, CHUNK_ELEMENTS // d))
    spans = [(first, min(first + group_rows, n)) for first in range(0, n, group_rows)]
    running = None
    if workers <= 1 or len(spans) == 1:
        for first, last in spans:
            running = _merge(running, _group_moments(codebook, first, last, rows, d))
    else:
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="toc-score", initializer=_one_intra_op_thread
        ) as pool:
            pending: deque = deque()
            for first, last in spans:
                pending.append(pool.submit(_group_moments, codebook, first, last, rows, d))
                if len(pending) >= 2 * workers:
                    running = _merge(running, pending.popleft().result())
            while pending:
                running = _merge(running, pending.popleft().result())
    assert running is not None
    return running[1], running[2]


def score_channels(
    codebook: Any,
    *,
    sim_weight: float = DEFAULT_SIM_WEIGHT,
    var_weight: float = DEFAULT_VAR_WEIGHT,
    chunk_rows: int | None = None,
    workers: int = 1,
    allow_nonfinite: bool = False,
    where: str = "codebook",
) -> ChannelScores:
    """Score every channel of an [N, D] codebook (torch, numpy, memmap or h5py; any float dtype).

    Reads the codebook once in row chunks with float64 accumulators. `workers` > 1 reduces row
    groups on that many threads (same bits as 1); the default is 1 because the small per-chunk
    ops mostly hold the GIL and measured slower with 2 threads than with 1 on a 2-core machine. Non-finite values raise
    ScoringError naming `where` and the channels, unless `allow_nonfinite`, in which case those
    channels get a NaN score.
    """
    shape = _shape_of(codebook)
    if len(shape) != 2:
        raise ScoringError(f"{where}: codebook must be 2-D [N, D] (expected 2 dims, got {list(shape)})")
    n, d = shape
    if n < 2:
        raise ScoringError(
            f"{where}: TOC needs at least 2 codes to form pairs (expected N >= 2, got N = {n})"
        )
    if d < 1:
        raise ScoringError(f"{where}: codebook has no channels (expected D >= 1, got {list(shape)})")
    _check_float_dtype(codebook, where)
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(d)
    if chunk_rows < 1:
        raise ScoringError(f"chunk_rows must be >= 1, got {chunk_rows}")

    with torch.no_grad():
        mean, m2 = _column_moments(codebook, n, d, int(chunk_rows), int(workers))
    variance = m2 / (n - 1)
    # (s^2 - q) / (N(N-1)) rewritten with s = N*mean, q = M2 + N*mean^2: same value, but built
    # from the stable moments instead of two large sums that cancel.
    similarity = mean * mean - m2 / (n * (n - 1))
    score = similarity * -float(sim_weight) + variance * float(var_weight)
    # NaN/Inf in any input value reaches the score whatever the weights (0 * inf is NaN).
    if not bool(torch.isfinite(score).all()):
        bad = ~(torch.isfinite(similarity) & torch.isfinite(variance) & torch.isfinite(score))
        if not allow_nonfinite:
            channels = torch.nonzero(bad).flatten().tolist()
            shown = ", ".join(map(str, channels[:8])) + (", ..." if len(channels) > 8 else "")
            # A finite mean with a non-finite variance means squares overflowed: the values are
            # finite but absurd (|x| > ~1e154), not NaN/Inf, and the message says so.
            overflow = torch.nonzero(bad & torch.isfinite(mean)).flatten().tolist()
            if overflow:
                shown = ", ".join(map(str, overflow[:8])) + (", ..." if len(overflow) > 8 else "")
                raise ScoringError(
                    f"{literal(where)}: finite but absurdly large values in {len(overflow)} channel(s) "
                    f"[{shown}]: their squares overflow float64 (expected values far below 1e+154); "
                    "the file is corrupt or not a codebook (pass {} to skip those channels)",
                    settings=("allow_nonfinite",),
                )
            raise ScoringError(
                f"{literal(where)}: non-finite values (NaN/Inf) in {len(channels)} channel(s) [{shown}]; "
                "fix the codebook or pass {} to skip those channels",
                settings=("allow_nonfinite",),
            )
        nan = torch.full_like(similarity, float("nan"))
        similarity = torch.where(bad, nan, similarity)
        variance = torch.where(bad, nan, variance)
        score = torch.where(bad, nan, score)
    return ChannelScores(
        similarity=similarity,
        variance=variance,
        score=score,
        n_codes=n,
        sim_weight=float(sim_weight),
        var_weight=float(var_weight),
    )


# ---------------------------------------------------------------------- the published arithmetic

_REFERENCE_SIMILARITY_CACHE: OrderedDict[str, torch.Tensor] = OrderedDict()
_REFERENCE_CACHE_SIZE = 8


def reference_similarity(codebook: Any) -> torch.Tensor:
    """sim as the published routine computes it: the codebook in float64, every product
    E[i] * E[j] (i outer, j inner, i != j) added in order into a float32 buffer, then divided
    by N (N - 1) in float32. float32 [D].

    The sequential float32 rounding is the point, so this is a loop of N (N - 1) vector steps
    (about 0.5 s at N = 400); results are cached per codebook content.
    """
    e = torch.as_tensor(np.asarray(codebook) if not torch.is_tensor(codebook) else codebook).detach()
    e = e.to(device="cpu", dtype=torch.float64).contiguous()
    key = hashlib.sha1(e.numpy().tobytes() + str(tuple(e.shape)).encode()).hexdigest()
    if key in _REFERENCE_SIMILARITY_CACHE:
        _REFERENCE_SIMILARITY_CACHE.move_to_end(key)
        return _REFERENCE_SIMILARITY_CACHE[key].clone()
    rows = e.numpy()
    n, d = rows.shape
    total = np.zeros(d, dtype=np.float32)
    wide = np.empty(d, dtype=np.float64)
    for i in range(n):
        products = rows[i] * rows  # float64 [N, D]
        for j in range(n):
            if i != j:
                # An in-place add of float64 into float32: computed in float64, rounded to float32.
                np.add(total, products[j], out=wide)
                np.copyto(total, wide, casting="same_kind")
    similarity = torch.from_numpy(total) / (n * (n - 1))
    _REFERENCE_SIMILARITY_CACHE[key] = similarity
    while len(_REFERENCE_SIMILARITY_CACHE) > _REFERENCE_CACHE_SIZE:
        _REFERENCE_SIMILARITY_CACHE.popitem(last=False)
    return similarity.clone()


def reference_score(codebook: Any, sim_weight: float, var_weight: float) -> torch.Tensor:
    """The published score in the published dtypes: -w_sim * sim stays float32 (the sim-only
    score is ranked in float32); with a variance term it becomes float64 (unbiased variance of
    the float64 codebook)."""
    score = -float(sim_weight) * reference_similarity(codebook)
    if var_weight:
        e = torch.as_tensor(np.asarray(codebook) if not torch.is_tensor(codebook) else codebook).detach()
        score = score + float(var_weight) * e.to(device="cpu", dtype=torch.float64).var(dim=0)
    return score
