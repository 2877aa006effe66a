"""`toc health CKPT --task TASK`: how far a checkpoint's audio and video share code ids on a
task's held-out clips (toc.eval.sharing), the checkpoint loaded and encoded as `toc eval` does."""

from __future__ import annotations

from pathlib import Path

from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE
from toc.eval.sharing import TaskSharing, measure_code_sharing
from toc.eval.tasks import load_task
from toc.pipeline.session import EvalSession
from toc.progress import ProgressFactory, no_progress


def task_code_sharing(
    checkpoint: str | Path, task: str, *, data_root: str | Path | None = None, config: str | Path | None = None,
    trust_checkpoint: bool = False, device: str = DEFAULT_DEVICE, cache_dir: str | Path | None = None,
    dtype: str = DEFAULT_DTYPE, split_seed: int = 0, progress: ProgressFactory = no_progress,
) -> TaskSharing:
    """The audio–video code-sharing measures of `checkpoint` on `task` (every codebook level)."""
    session = EvalSession.open(
        checkpoint, trust_checkpoint=trust_checkpoint, device=device, cache_dir=cache_dir, progress=progress,
        staged_cache=True,
    )
    with session.cache.kept_on_success():
        data = load_task(task, data_root=data_root, config=config)
        return measure_code_sharing(data, session.cache, dtype=dtype, split_seed=split_seed)
