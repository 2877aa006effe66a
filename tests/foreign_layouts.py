"""State_dicts in other VQ libraries' documented key layouts, built by hand (no library needed).

Each builder returns the state_dict (or the container the library saves) and what a correct
locator must find: level names in code order, the [K, D] codebook of each level and its
per-code EMA count. The key names and shapes are the ones docs/toc.md lists; where a library
installs here, tests/test_foreign_libraries.py checks them against the library itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

K, D = 32, 16


@dataclass
class Built:
    container: dict
    layout: str
    names: list[str] = field(default_factory=list)
    codebooks: list[torch.Tensor] = field(default_factory=list)
    usage: list[torch.Tensor | None] = field(default_factory=list)

    def add(self, name: str, codebook: torch.Tensor, usage: torch.Tensor | None = None) -> None:
        """The next level in code order."""
        self.names.append(name)
        self.codebooks.append(codebook)
        self.usage.append(usage)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=dtype)


def _counts(g, *shape):
    # EMA counts: positive, some near zero (rarely used codes), never exactly uniform.
    return torch.rand(*shape, generator=g) * 5 + (torch.rand(*shape, generator=g) > 0.2).float() * 3


def _lucidrains_codebook(g, state: dict, prefix: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One vector-quantize-pytorch EMA codebook under `prefix`: initted, cluster_size [1,K],
    embed_avg, embed [1,K,dim]. Returns its [K, dim] codebook and [K] counts."""
    embed, counts = _randn(g, 1, K, dim), _counts(g, 1, K)
    state.update({prefix + "initted": torch.tensor(True), prefix + "cluster_size": counts, prefix + "embed_avg": embed * counts[..., None], prefix + "embed": embed})
    return embed[0], counts[0]


def _encodec_codebook(g, state: dict, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One encodec EMA codebook under `prefix` (transformers keeps the layout): inited [1],
    cluster_size [K], embed [K,D], embed_avg. Returns its codebook and counts."""
    embed, counts = _randn(g, K, D), _counts(g, K)
    state.update({prefix + "inited": torch.ones(1), prefix + "cluster_size": counts, prefix + "embed": embed, prefix + "embed_avg": embed * counts[:, None]})
    return embed, counts


def vector_quantize_pytorch_rvq(seed: int = 0, levels: int = 3) -> Built:
    """lucidrains ResidualVQ: layers.{q}._codebook.{initted, cluster_size [1,K], embed_avg, embed [1,K,D]}."""
    g = _gen(seed)
    out = Built({}, "vector-quantize-pytorch")
    for q in range(levels):
        p = f"layers.{q}._codebook."
        out.add(p + "embed", *_lucidrains_codebook(g, out.container, p, D))
    return out


def vector_quantize_pytorch_heads(seed: int = 0, heads: int = 2) -> Built:
    """VectorQuantize(heads=H, separate_codebook_per_head=True): _codebook.embed [H,K,D]."""
    g = _gen(seed)
    embed, counts = _randn(g, heads, K, D), _counts(g, heads, K)
    state = {
        "project_in.weight": _randn(g, heads * D, D), "project_in.bias": _randn(g, heads * D),
        "project_out.weight": _randn(g, D, heads * D), "project_out.bias": _randn(g, D),
        "_codebook.initted": torch.tensor(True), "_codebook.cluster_size": counts,
        "_codebook.embed_avg": embed * counts[..., None], "_codebook.embed": embed,
    }
    names = [f"_codebook.embed[{h}]" for h in range(heads)]
    return Built(state, "vector-quantize-pytorch", names, list(embed.unbind(0)), list(counts.unbind(0)))


def vector_quantize_pytorch_grouped(seed: int = 0) -> Built:
    """GroupedResidualVQ(groups=2, num_quantizers=2): rvqs.{g}.layers.{q}._codebook.* (codebook dim D/2)."""
    g = _gen(seed)
    out = Built({}, "vector-quantize-pytorch")
    for group in range(2):
        for q in range(2):
            p = f"rvqs.{group}.layers.{q}._codebook."
            out.add(p + "embed", *_lucidrains_codebook(g, out.container, p, D // 2))
    return out


def encodec_original(seed: int = 0, levels: int = 12) -> Built:
    """facebookresearch encodec: quantizer.vq.layers.{i}._codebook.{inited [1], cluster_size [K], embed [K,D], embed_avg}."""
    g = _gen(seed)
    state = {"encoder.model.0.conv.conv.weight_g": _randn(g, 4, 1, 1), "encoder.model.0.conv.conv.weight_v": _randn(g, 4, 1, 7)}
    out = Built(state, "encodec")
    # 12 levels: code order is 0, 1, ..., 9, 10, 11, not the string order 0, 1, 10, 11, 2.
    for i in range(levels):
        p = f"quantizer.vq.layers.{i}._codebook."
        out.add(p + "embed", *_encodec_codebook(g, state, p))
    state["decoder.model.0.conv.conv.bias"] = _randn(g, 4)
    return out


def transformers_encodec(seed: int = 0, levels: int = 3) -> Built:
    """transformers EncodecModel: quantizer.layers.{i}.codebook.{inited, cluster_size, embed, embed_avg}."""
    g = _gen(seed)
    out = Built({"encoder.layers.0.conv.weight": _randn(g, 4, 1, 7)}, "transformers-encodec")
    for i in range(levels):
        p = f"quantizer.layers.{i}.codebook."
        out.add(p + "embed", *_encodec_codebook(g, out.container, p))
    return out


def dac_original(seed: int = 0, levels: int = 3, codebook_dim: int = 8) -> Built:
    """descript-audio-codec weights.pth: {"state_dict": ..., "metadata": {"kwargs": ...}};
    quantizer.quantizers.{i}.{in_proj,out_proj}.{weight_g, weight_v, bias}, codebook.weight [K, 8]."""
    g = _gen(seed)
    state = {}
    container = {"state_dict": state, "metadata": {"kwargs": {"n_codebooks": levels, "codebook_size": K, "codebook_dim": codebook_dim}}}
    out = Built(container, "descript-audio-codec")
    for i in range(levels):
        p = f"quantizer.quantizers.{i}."
        state.update({
            p + "in_proj.weight_g": _randn(g, codebook_dim, 1, 1), p + "in_proj.weight_v": _randn(g, codebook_dim, D, 1),
            p + "in_proj.bias": _randn(g, codebook_dim), p + "out_proj.weight_g": _randn(g, D, 1, 1),
            p + "out_proj.weight_v": _randn(g, D, codebook_dim, 1), p + "out_proj.bias": _randn(g, D),
            p + "codebook.weight": _randn(g, K, codebook_dim),
        })
        out.add(p + "codebook.weight", state[p + "codebook.weight"])
    return out


def transformers_dac(seed: int = 0, levels: int = 3, codebook_dim: int = 8) -> Built:
    """transformers DacModel: quantizer.quantizers.{i}.{in_proj,out_proj}.{weight,bias}, codebook.weight."""
    g = _gen(seed)
    out = Built({}, "transformers-dac")
    for i in range(levels):
        p = f"quantizer.quantizers.{i}."
        out.container.update({
            p + "in_proj.weight": _randn(g, codebook_dim, D, 1), p + "in_proj.bias": _randn(g, codebook_dim),
            p + "out_proj.weight": _randn(g, D, codebook_dim, 1), p + "out_proj.bias": _randn(g, D),
            p + "codebook.weight": _randn(g, K, codebook_dim),
        })
        out.add(p + "codebook.weight", out.container[p + "codebook.weight"])
    return out


def moshi_mimi(seed: int = 0, acoustic: int = 3) -> Built:
    """moshi Mimi: quantizer.rvq_first / rvq_rest .vq.layers.{i}._codebook.{_initialized, cluster_usage, embedding_sum}."""
    g = _gen(seed)
    out = Built({}, "moshi-mimi")
    state = out.container
    groups = [("quantizer.rvq_first", 1), ("quantizer.rvq_rest", acoustic)]
    for group, count in groups:
        state[f"{group}.input_proj.weight"] = _randn(g, D, 2 * D, 1)
        for i in range(count):
            total, counts = _randn(g, K, D), _counts(g, K)
            counts[0] = 0.0  # a dead code: the library clamps its count to 1e-5
            p = f"{group}.vq.layers.{i}._codebook."
            state.update({p + "_initialized": torch.ones(1), p + "cluster_usage": counts, p + "embedding_sum": total})
            out.add(p + "embedding_sum", total / counts.clamp(min=1e-5)[:, None], counts)
    return out


def transformers_mimi(seed: int = 0, acoustic: int = 3) -> Built:
    """transformers MimiModel: quantizer.{semantic,acoustic}_residual_vector_quantizer.layers.{i}.codebook.{initialized, cluster_usage, embed_sum}."""
    g = _gen(seed)
    out = Built({}, "transformers-mimi")
    state = out.container
    # Alphabetically 'acoustic' < 'semantic', but the semantic code comes first.
    groups = [("quantizer.semantic_residual_vector_quantizer", 1), ("quantizer.acoustic_residual_vector_quantizer", acoustic)]
    for group, count in groups:
        for i in range(count):
            total, counts = _randn(g, K, D), _counts(g, K)
            p = f"{group}.layers.{i}.codebook."
            state.update({p + "initialized": torch.ones(1), p + "cluster_usage": counts, p + "embed_sum": total})
            out.add(p + "embed_sum", total / counts.clamp(min=1e-5)[:, None], counts)
        state[f"{group}.input_proj.weight"] = _randn(g, D, 2 * D, 1)
    return out


def taming_vqgan(seed: int = 0) -> Built:
    """taming-transformers VQModel in a Lightning .ckpt: {"state_dict": {..., "quantize.embedding.weight": [K, D]}, ...}."""
    g = _gen(seed)
    embed = _randn(g, K, D)
    state = {
        "encoder.conv_in.weight": _randn(g, 8, 3, 3, 3), "quant_conv.weight": _randn(g, D, 8, 1, 1),
        "quantize.embedding.weight": embed, "post_quant_conv.weight": _randn(g, 8, D, 1, 1),
        "loss.discriminator.main.0.weight": _randn(g, 4, 3, 4, 4),
    }
    return Built({"state_dict": state, "epoch": 3, "global_step": 120}, "taming-vqgan", ["quantize.embedding.weight"], [embed], [None])


def taming_gumbel(seed: int = 0) -> Built:
    """taming GumbelQuantize: quantize.embed.weight [K, D] beside quantize.proj.{weight, bias}."""
    g = _gen(seed)
    embed = _randn(g, K, D)
    state = {"quantize.proj.weight": _randn(g, K, 8, 1, 1), "quantize.proj.bias": _randn(g, K), "quantize.embed.weight": embed}
    return Built(state, "taming-gumbel", ["quantize.embed.weight"], [embed], [None])


def vq_vae_2(seed: int = 0, k: int = 24, d: int = 12) -> Built:
    """rosinality vq-vae-2-pytorch: quantize_{t,b}.{embed [D,K], cluster_size [K], embed_avg [D,K]} (K != D)."""
    g = _gen(seed)
    out = Built({}, "vq-vae-2")
    state = out.container
    for part in ("quantize_t", "quantize_b"):
        embed, counts = _randn(g, d, k), _counts(g, k)
        state.update({f"{part}.embed": embed, f"{part}.cluster_size": counts, f"{part}.embed_avg": embed * counts})
        out.add(f"{part}.embed", embed.t(), counts)
    state["enc_b.blocks.0.weight"] = _randn(g, 4, 3, 4, 4)
    return out


BUILDERS = {
    "vq-pytorch-rvq": vector_quantize_pytorch_rvq,
    "vq-pytorch-heads": vector_quantize_pytorch_heads,
    "vq-pytorch-grouped": vector_quantize_pytorch_grouped,
    "encodec": encodec_original,
    "transformers-encodec": transformers_encodec,
    "descript-audio-codec": dac_original,
    "transformers-dac": transformers_dac,
    "moshi-mimi": moshi_mimi,
    "transformers-mimi": transformers_mimi,
    "taming-vqgan": taming_vqgan,
    "taming-gumbel": taming_gumbel,
    "vq-vae-2": vq_vae_2,
}
