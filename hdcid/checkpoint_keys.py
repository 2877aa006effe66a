"""The top-level key names of a DCID / H-DCID checkpoint: one table for the writer (the trainer)
and every reader.

The published pretraining writes, per epoch: the module state_dicts `Encoder_parameters`,
`CPC_parameters`, `Text_ar_lstm_parameters`, `Decoder_parameters` and one CLUB estimator per
modality (`Video_mi_net_parameters`, ...), the Adam states `optimizer` and
`optimizer_{modality}_mi_net`, and the ints `epoch` and `total_step`. Level 2 (H-DCID) adds the
same names with `_2` (`CPC_2_parameters`, `Video_mi_net_2_parameters`,
`optimizer_video_mi_net_2`). Our trainer adds the input statistics, the schedule, its config and
the state it needs to resume exactly.
"""

from __future__ import annotations

from hdcid.normalization import NORMALIZATION_KEY

ENCODER_KEY = "Encoder_parameters"
TEXT_LSTM_KEY = "Text_ar_lstm_parameters"
DECODER_KEY = "Decoder_parameters"
OPTIMIZER_KEY = "optimizer"  # the main Adam (text LSTM, encoder, CPC, decoder)
EPOCH_KEY = "epoch"
TOTAL_STEP_KEY = "total_step"
SCHEDULER_KEY = "scheduler"
CONFIG_KEY = "Train_config"
TRAINER_KEY = "Trainer_state"
SWAP_STATE_KEY = "Swapped_codes_state"  # the swapped code prediction's queue and centres, only when it is on
# The order in which the reference trains (and stores) the CLUB estimators of a level.
MI_MODALITIES = ("video", "text", "audio")
# FCID's four estimators, in the order its pretraining steps them (audiovisual: the coarse
# video and audio rows stacked). Its published file holds only ENCODER_KEY, EPOCH_KEY and
# TOTAL_STEP_KEY; our trainer adds the other modules under the same key scheme.
FCID_MI_NETS = ("video", "audio", "audiovisual", "text")
FCID_PUBLISHED_KEYS = (ENCODER_KEY, EPOCH_KEY, TOTAL_STEP_KEY)


def _level_suffix(level: int) -> str:
    return "_2" if level else ""


def cpc_key(level: int) -> str:
    return f"CPC{_level_suffix(level)}_parameters"


def mi_net_key(modality: str, level: int) -> str:
    return f"{modality.capitalize()}_mi_net{_level_suffix(level)}_parameters"


def mi_optimizer_key(modality: str, level: int) -> str:
    return f"optimizer_{modality}_mi_net{_level_suffix(level)}"


def module_keys(levels: int) -> tuple[str, ...]:
    """The module state_dict keys of a `levels`-level model, in the order the trainer writes them."""
    keys = [ENCODER_KEY, TEXT_LSTM_KEY, cpc_key(0), DECODER_KEY]
    if levels == 2:
        keys.append(cpc_key(1))
    keys += [mi_net_key(m, level) for level in range(levels) for m in MI_MODALITIES]
    return tuple(keys)


# The keys a model checkpoint may hold without being listed as extra: the published ones, the
# level-2 module states, and the input statistics.
REFERENCE_KEYS = (
    ENCODER_KEY, TEXT_LSTM_KEY, cpc_key(0), cpc_key(1), DECODER_KEY,
    *(mi_net_key(m, level) for level in (0, 1) for m in MI_MODALITIES),
    OPTIMIZER_KEY, *(mi_optimizer_key(m, 0) for m in MI_MODALITIES),
    EPOCH_KEY, TOTAL_STEP_KEY, NORMALIZATION_KEY,
)
