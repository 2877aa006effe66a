"""The toolkit's words for evaluation, defined once: heads, protocols, directions, cache and
overlap policies, retrieval layouts and vectors, and the defaults every front end shares (head
seeds, batch sizes).

The modules that give these words their meaning (toc.eval.heads, protocols, cache, ...) take
them from here; so do the command line (choices, defaults shown by --help), `toc compare` plans
and `toc eval`. Imports no torch, so the command line can answer --help before any work starts.
The model's words (families, methods, dtypes, devices, recipe choices, published sizes) are
hdcid.vocabulary's; the tasks are toc.eval.tasks', the variants toc.eval.variants', the TOC
settings toc.codebook.settings'.
"""

from __future__ import annotations

from hdcid.vocabulary import PUBLISHED_BATCH_SIZE

# Heads trained on one modality's codes and tested on the other's.
CODE_HEAD = "codes"  # reads code ids only (toc/eval/code_head.py)
HEADS = ("linear", "prototype", CODE_HEAD)
DEFAULT_HEADS = ("linear",)
# How linear heads are trained: all heads of a direction together, the same code one head at a
# time (identical records), or the per-head nn.Module loop (toc/eval/head_groups.py).
HEAD_ENGINES = ("grouped", "single", "autograd")
DEFAULT_HEAD_ENGINE = "grouped"
# Head seeds when none are given, in `toc eval` and in a `toc compare` plan alike. One: the
# report's intervals resample the evaluated clips (and pretraining runs) whatever the seeds;
# more seeds add head-seed spread at their cost in time (`--seeds 0,1,2`, `seeds = [0, 1, 2]`).
DEFAULT_SEEDS = (0,)
HEAD_BATCH_SIZE = PUBLISHED_BATCH_SIZE  # the published downstream scripts' batch
ENCODE_BATCH_SIZE = 64  # clips per encoder forward pass

# strict: held-out clips, epoch chosen on a validation split, encoder in eval mode;
# reference: the published scripts' quirks (toc/eval/protocols.py).
PROTOCOLS = ("strict", "reference")
DEFAULT_PROTOCOL = "strict"
DIRECTIONS = ("v2a", "a2v")  # v2a: the head learns on video and is tested on audio
DIRECTION_TEXT = {"v2a": "train on video, test on audio", "a2v": "train on audio, test on video"}

FINGERPRINTS = ("stat", "sha256")  # what of an input file the code cache's key sees
OVERLAP_POLICIES = ("report", "exclude")  # evaluated clips also in pretraining: count and warn, or drop

# Zero-shot retrieval through the codes (toc/eval/retrieval.py, toc/data/retrieval.py).
VECTOR_KINDS = ("codewords", "histogram")
RETRIEVAL_LAYOUTS = ("paired", "clotho", "mscoco", "flickrsoundnet", "msvd", "valor32k")
RETRIEVAL_TOC_SOURCES = ("selection", "channels")  # retrieval has no published TOC setting
RETRIEVAL_DIRECTIONS = ("a2t", "t2a", "v2t", "t2v", "a2v", "v2a", "a2a", "v2v", "t2t")
VALOR_SPLITS = {
    "train": "desc_train.json", "val": "desc_val.json", "test": "desc_test.json",
    "500": "random_500.json", "1000": "random_1000.json",
}

# Report: bootstrap resamples per interval and test (toc/report/resampling.py).
DEFAULT_RESAMPLES = 5000

# Built-in data: the width of the synthetic corpus' text features (toc/corpora/synthetic.py).
SYNTHETIC_TEXT_DIM = 768

# The demo's remedies: those of `small-corpus`, not of `toc train`'s default (`shared-codes`).
# The demo trains 6 epochs (150 steps) with 64 codes for 52 categories: the default's floor of 2
# codes per category cannot be met there (38-49 codes in use, fewer than the categories), and
# agreement was still rising in the last epoch. Measured (corpus seed 0, two runs per method),
# the shares rise (pretraining audio-video agreement 56-82%) and AVE transfer falls (best
# variant, video→audio linear / prototype / code-id 49.6 / 56.7 / 56.7% against 64.1 / 67.8 /
# 70.0%; benchmarks/results/unified_codes.md). `toc train` gives the default at least 400
# steps and 400 codes, the setting it was measured in.
DEMO_RECIPE = "small-corpus"
