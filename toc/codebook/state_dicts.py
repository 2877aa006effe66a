"""How saved state_dicts are wrapped, whoever wrote them: the wrapper keys a training framework
puts around the weights, the key prefixes DDP and torch.compile add, and the float dtypes a
codebook may have. Every reader of model files (CMG checkpoints, other VQ models) uses these."""

from __future__ import annotations

import torch

# A trainer's dict around the weights: Lightning / DAC (`state_dict`), common scripts (`model`, ...).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
# DistributedDataParallel (`module.`) and torch.compile (`_orig_mod.`) prefix every key.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def strip_prefix(name: str) -> str:
    """`name` without any leading DDP / torch.compile prefixes (in any order, repeated)."""
    changed = True
    while changed:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name
