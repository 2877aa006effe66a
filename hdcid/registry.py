"""The encoder-family registry: per family, the class that builds it, where it keeps its codebook,
which encoder keys identify it, and which tensor shapes give its sizes.

A family is added here and nowhere else: the checkpoint loader (toc.codebook.checkpoint) detects
families with `detect_family`, reads sizes through `FamilySpec.size_keys`, checks keys against
`new_encoder(sizes)` on the meta device and builds the encoder with it. An encoder class offers
`levels`, `codebook(level)`, `encode(modality, x)` and `semantic_features(modality, x)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from hdcid.errors import ModelError
from hdcid.fcid import CODEBOOK_PREFIX as FCID_CODEBOOK_PREFIX
from hdcid.fcid import FcidEncoder, fcid_sizes
from hdcid.models import CmgEncoder, EncoderSizes
from hdcid.vocabulary import CMG_FAMILIES, FAMILY_MODALITIES, FCID_FAMILY


@dataclass(frozen=True)
class SizeKey:
    """An EncoderSizes field read from one axis of one encoder tensor."""

    key: str
    axis: int


@dataclass(frozen=True)
class FamilySpec:
    """One encoder family.

    `markers`: alternative sets of top-level key prefixes; the family is detected when every
    prefix of one set occurs. `temporal` is the audio temporal module (its `encoder.layers.N`
    give the number of layers, its projection the internal width).
    """

    name: str
    encoder_class: type[nn.Module]
    codebook_prefix: str
    markers: tuple[tuple[str, ...], ...]
    temporal: str
    size_keys: tuple[tuple[str, SizeKey], ...]  # (EncoderSizes field, where it is read)
    base_sizes: EncoderSizes  # the fields no tensor shape gives (family, nhead, ...)

    @property
    def codebook_key(self) -> str:
        return f"{self.codebook_prefix}.embedding"

    @property
    def ema_count_key(self) -> str:
        return f"{self.codebook_prefix}.ema_count"

    @property
    def statistics_keys(self) -> tuple[str, ...]:
        """The quantizer's training statistics (EMA counts and weights, batches since each code
        was last used): the MM-EMA update and the dead-code reset read them; encoding reads only
        the codebook (`codebook_key`) and the parameters."""
        return tuple(f"{self.codebook_prefix}.{name}" for name in ("ema_count", "ema_weight", "unactivated_count"))

    @property
    def width_key(self) -> str:
        """The temporal projection [width, audio_dim]: its rows must equal the code width."""
        return f"{self.temporal}.affine_matrix.weight"

    @property
    def levels(self) -> int:
        return self.base_sizes.levels

    def layer_indices(self, keys: Iterable[str]) -> set[int]:
        pattern = re.compile(re.escape(self.temporal) + r"\.encoder\.layers\.(\d+)\.")
        return {int(m.group(1)) for k in keys for m in [pattern.match(k)] if m}

    def matches(self, keys: Iterable[str]) -> bool:
        roots = {k.split(".", 1)[0] for k in keys}
        return any(all(prefix in roots for prefix in group) for group in self.markers)


def _cmg_size_keys(family: str) -> tuple[tuple[str, SizeKey], ...]:
    modalities = FAMILY_MODALITIES[family]
    keys = [
        ("audio_dim", SizeKey("audio_self_att.affine_matrix.weight", 1)),
        ("audio_output_dim", SizeKey("Audio_encoder.audio_linear.weight", 0)),
        ("dim_feedforward", SizeKey("audio_self_att.encoder.layers.0.linear1.weight", 0)),
    ]
    if "video" in modalities:
        keys += [
            ("video_dim", SizeKey("video_self_att.affine_matrix.weight", 1)),
            ("video_output_dim", SizeKey("Video_encoder.conv_stack.2.weight", 0)),
            ("se_hidden", SizeKey("video_semantic_encoder.se_layer.0.weight", 0)),
            ("video_att_dim", SizeKey("video_semantic_encoder.affine_video_ave.weight", 0)),
        ]
    if "text" in modalities:
        keys += [
            ("text_dim", SizeKey("text_self_att.affine_matrix.weight", 1)),
            ("text_output_dim", SizeKey("Text_encoder.text_linear.weight", 0)),
        ]
    return tuple(keys)


_FCID_SIZE_KEYS = (
    ("audio_dim", SizeKey("a_self_att.affine_matrix.weight", 1)),
    ("video_dim", SizeKey("v_self_att.affine_matrix.weight", 1)),
    ("text_dim", SizeKey("t_self_att.affine_matrix.weight", 1)),
    ("audio_output_dim", SizeKey("a_spe_encoder.audio_linear.weight", 0)),
    ("video_output_dim", SizeKey("v_spe_encoder.conv_stack.2.weight", 0)),
    ("text_output_dim", SizeKey("t_spe_encoder.input_linear.weight", 0)),
    ("dim_feedforward", SizeKey("a_self_att.encoder.layers.0.linear1.weight", 0)),
    ("se_hidden", SizeKey("v_gen_encoder.se_layer.0.weight", 0)),
    ("video_att_dim", SizeKey("v_gen_encoder.affine_video_ave.weight", 0)),
)

# Detection order matters: the first family whose markers match wins (H-DCID also has every
# DCID-AVT marker; FCID's keys share no top-level name with the others).
_CMG_MARKERS = {
    "hdcid-avt": (("Video_encoder_2",),),
    "dcid-avt": (("Video_encoder", "Text_encoder"),),
    "dcid-av": (("Video_encoder", "Audio_encoder"),),
    "dcid-at": (("Text_encoder", "Audio_encoder"),),
}
FAMILY_SPECS: dict[str, FamilySpec] = {
    FCID_FAMILY: FamilySpec(
        FCID_FAMILY, FcidEncoder, FCID_CODEBOOK_PREFIX,
        markers=((FCID_CODEBOOK_PREFIX,), ("va2vat", "a_self_att")),
        temporal="a_self_att", size_keys=_FCID_SIZE_KEYS, base_sizes=fcid_sizes(),
    ),
    **{
        name: FamilySpec(
            name, CmgEncoder, "Cross_quantizer", markers=_CMG_MARKERS[name], temporal="audio_self_att",
            size_keys=_cmg_size_keys(name), base_sizes=EncoderSizes(family=name),
        )
        for name in ("hdcid-avt", "dcid-avt", "dcid-av", "dcid-at")
    },
}
assert set(FAMILY_SPECS) == set(FAMILY_MODALITIES) and set(CMG_FAMILIES) < set(FAMILY_SPECS)


def family_spec(family: str) -> FamilySpec:
    try:
        return FAMILY_SPECS[family]
    except KeyError:
        raise ModelError(f"unknown encoder family {family!r}; expected one of {', '.join(FAMILY_SPECS)}") from None


def detect_family(keys: Iterable[str]) -> str | None:
    """The family whose identifying keys an encoder state_dict holds, or None."""
    names = [k for k in keys if isinstance(k, str)]
    for spec in FAMILY_SPECS.values():
        if spec.matches(names):
            return spec.name
    return None


def encoder_key_pattern() -> re.Pattern[str]:
    """Matches a key that only an encoder state_dict of some family has (possibly prefixed)."""
    names = sorted({re.escape(s.codebook_key) for s in FAMILY_SPECS.values()}
                   | {re.escape(s.temporal) + r"\." for s in FAMILY_SPECS.values()})
    return re.compile(r"(^|\.)(" + "|".join(names) + ")")


def new_encoder(sizes: EncoderSizes) -> nn.Module:
    """An encoder of `sizes.family` with fresh weights (on the current default device and dtype)."""
    return family_spec(sizes.family).encoder_class(sizes)
