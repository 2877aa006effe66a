"""State_dicts in other VQ libraries' documented key layouts, built by hand (no library needed).

Each builder returns the state_dict (or the container the library saves) and what a correct
locator must find: level names in code order, the [K, D] codebook of each level and its
per-code EMA count. The key names and shapes are the ones docs/toc.md lists; where a library
installs here, tests/test_foreign_libraries.py checks them against the library itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

K, D = 32, 16


@dataclass
class Built:
    container: dict
    layout: str
    names: list[str]
    codebooks: list[torch.Tensor]
    usage: list[torch.Tensor | None]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=dtype)


def _counts(g, *shape):
    # EMA counts: positive, some near zero (rarely used codes), never exactly uniform.
    return torch.rand(*shape, generator=g) * 5 + (torch.rand(*shape, generator=g) > 0.2).float() * 3


def vector_quantize_pytorch_rvq(seed: int = 0, levels: int = 3) -> Built:
    """lucidrains ResidualVQ: layers.{q}._codebook.{initted, cluster_size [1,K], embed_avg, embed [1,K,D]}."""
    g = _gen(seed)
    state, names, books, usage = {}, [], [], []
    for q in range(levels):
        embed, counts = _randn(g, 1, K, D), _counts(g, 1, K)
        p = f"layers.{q}._codebook."
        state.update({p + "initted": torch.tensor(True), p + "cluster_size": counts, p + "embed_avg": embed * counts[..., None], p + "embed": embed})
        names.append(p + "embed")
        books.append(embed[0])
        usage.append(counts[0])
    return Built(state, "vector-quantize-pytorch", names, books, usage)


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
    state, names, books, usage = {}, [], [], []
    for group in range(2):
        for q in range(2):
            embed, counts = _randn(g, 1, K, D // 2), _counts(g, 1, K)
            p = f"rvqs.{group}.layers.{q}._codebook."
            state.update({p + "initted": torch.tensor(True), p + "cluster_size": counts, p + "embed_avg": embed * counts[..., None], p + "embed": embed})
            names.append(p + "embed")
            books.append(embed[0])
            usage.append(counts[0])
    return Built(state, "vector-quantize-pytorch", names, books, usage)


def encodec_original(seed: int = 0, levels: int = 12) -> Built:
    """facebookresearch encodec: quantizer.vq.layers.{i}._codebook.{inited [1], cluster_size [K], embed [K,D], embed_avg}."""
    g = _gen(seed)
    state = {"encoder.model.0.conv.conv.weight_g": _randn(g, 4, 1, 1), "encoder.model.0.conv.conv.weight_v": _randn(g, 4, 1, 7)}
    names, books, usage = [], [], []
    # 12 levels: code order is 0, 1, ..., 9, 10, 11, not the string order 0, 1, 10, 11, 2.
    for i in range(levels):
        embed, counts = _randn(g, K, D), _counts(g, K)
        p = f"quantizer.vq.layers.{i}._codebook."
        state.update({p + "inited": torch.ones(1), p + "cluster_size": counts, p + "embed": embed, p + "embed_avg": embed * counts[:, None]})
        names.append(p + "embed")
        books.append(embed)
        usage.append(counts)
    state["decoder.model.0.conv.conv.bias"] = _randn(g, 4)
    return Built(state, "encodec", names, books, usage)


def transformers_encodec(seed: int = 0, levels: int = 3) -> Built:
    """transformers EncodecModel: quantizer.layers.{i}.codebook.{inited, cluster_size, embed, embed_avg}."""
    g = _gen(seed)
    state, names, books, usage = {"encoder.layers.0.conv.weight": _randn(g, 4, 1, 7)}, [], [], []
    for i in range(levels):
        embed, counts = _randn(g, K, D), _counts(g, K)
        p = f"quantizer.layers.{i}.codebook."
        state.update({p + "inited": torch.ones(1), p + "cluster_size": counts, p + "embed": embed, p + "embed_avg": embed * counts[:, None]})
        names.append(p + "embed")
        books.append(embed)
        usage.append(counts)
    return Built(state, "transformers-encodec", names, books, usage)


def dac_original(seed: int = 0, levels: int = 3, codebook_dim: int = 8) -> Built:
    """descript-audio-codec weights.pth: {"state_dict": ..., "metadata": {"kwargs": ...}};
    quantizer.quantizers.{i}.{in_proj,out_proj}.{weight_g, weight_v, bias}, codebook.weight [K, 8]."""
    g = _gen(seed)
    state, names, books = {}, [], []
    for i in range(levels):
        p = f"quantizer.quantizers.{i}."
        state.update({
            p + "in_proj.weight_g": _randn(g, codebook_dim, 1, 1), p + "in_proj.weight_v": _randn(g, codebook_dim, D, 1),
            p + "in_proj.bias": _randn(g, codebook_dim), p + "out_proj.weight_g": _randn(g, D, 1, 1),
            p + "out_proj.weight_v": _randn(g, D, codebook_dim, 1), p + "out_proj.bias": _randn(g, D),
            p + "codebook.weight": _randn(g, K, codebook_dim),
        })
        names.append(p + "codebook.weight")
        books.append(state[p + "codebook.weight"])
    container = {"state_dict": state, "metadata": {"kwargs": {"n_codebooks": levels, "codebook_size": K, "codebook_dim": codebook_dim}}}
    return Built(container, "descript-audio-codec", names, books, [None] * levels)


def transformers_dac(seed: int = 0, levels: int = 3, codebook_dim: int = 8) -> Built:
    """transformers DacModel: quantizer.quantizers.{i}.{in_proj,out_proj}.{weight,bias}, codebook.weight."""
    g = _gen(seed)
    state, names, books = {}, [], []
    for i in range(levels):
        p = f"quantizer.quantizers.{i}."
        state.update({
            p + "in_proj.weight": _randn(g, codebook_dim, D, 1), p + "in_proj.bias": _randn(g, codebook_dim),
            p + "out_proj.weight": _randn(g, D, codebook_dim, 1), p + "out_proj.bias": _randn(g, D),
            p + "codebook.weight": _randn(g, K, codebook_dim),
        })
        names.append(p + "codebook.weight")
        books.append(state[p + "codebook.weight"])
    return Built(state, "transformers-dac", names, books, [None] * levels)


def moshi_mimi(seed: int = 0, acoustic: int = 3) -> Built:
    """moshi Mimi: quantizer.rvq_first / rvq_rest .vq.layers.{i}._codebook.{_initialized, cluster_usage, embedding_sum}."""
    g = _gen(seed)
    state, names, books, usage = {}, [], [], []
    groups = [("quantizer.rvq_first", 1), ("quantizer.rvq_rest", acoustic)]
    for group, count in groups:
        state[f"{group}.input_proj.weight"] = _randn(g, D, 2 * D, 1)
        for i in range(count):
            total, counts = _randn(g, K, D), _counts(g, K)
            counts[0] = 0.0  # a dead code: the library clamps its count to 1e-5
            p = f"{group}.vq.layers.{i}._codebook."
            state.update({p + "_initialized": torch.ones(1), p + "cluster_usage": counts, p + "embedding_sum": total})
            names.append(p + "embedding_sum")
            books.append(total / counts.clamp(min=1e-5)[:, None])
            usage.append(counts)
    return Built(state, "moshi-mimi", names, books, usage)


def transformers_mimi(seed: int = 0, acoustic: int = 3) -> Built:
    """transformers MimiModel: quantizer.{semantic,acoustic}_residual_vector_quantizer.layers.{i}.codebook.{initialized, cluster_usage, embed_sum}."""
    g = _gen(seed)
    state, names, books, usage = {}, [], [], []
    # Alphabetically 'acoustic' < 'semantic', but the semantic code comes first.
    groups = [("quantizer.semantic_residual_vector_quantizer", 1), ("quantizer.acoustic_residual_vector_quantizer", acoustic)]
    for group, count in groups:
        for i in range(count):
            total, counts = _randn(g, K, D), _counts(g, K)
            p = f"{group}.layers.{i}.codebook."
            state.update({p + "initialized": torch.ones(1), p + "cluster_usage": counts, p + "embed_sum": total})
            names.append(p + "embed_sum")
            books.append(total / counts.clamp(min=1e-5)[:, None])
            usage.append(counts)
        state[f"{group}.input_proj.weight"] = _randn(g, D, 2 * D, 1)
    return Built(state, "transformers-mimi", names, books, usage)


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
    state, names, books, usage = {}, [], [], []
    for part in ("quantize_t", "quantize_b"):
        embed, counts = _randn(g, d, k), _counts(g, k)
        state.update({f"{part}.embed": embed, f"{part}.cluster_size": counts, f"{part}.embed_avg": embed * counts})
        names.append(f"{part}.embed")
        books.append(embed.t())
        usage.append(counts)
    state["enc_b.blocks.0.weight"] = _randn(g, 4, 3, 4, 4)
    return Built(state, "vq-vae-2", names, books, usage)


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
