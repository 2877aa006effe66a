"""On a tiny planted-structure corpus, training makes the modalities share codes — more often
than two modalities with the same code usage would by chance, and without collapsing onto a
few codes (which would make "agreement" trivially high)."""

from __future__ import annotations

import torch

import hdcid.training.trainer as trainer_module
from hdcid.training import TrainConfig, Trainer
from tests.train_corpus import PlantedCorpus


def _chance_agreement(x: torch.Tensor, y: torch.Tensor, n_codes: int) -> float:
    """Agreement of two independent modalities with these code frequencies: Σ_k p_x(k)·p_y(k)."""
    px = torch.bincount(x.flatten().long(), minlength=n_codes).double() / x.numel()
    py = torch.bincount(y.flatten().long(), minlength=n_codes).double() / y.numel()
    return float((px * py).sum())


def _spy(monkeypatch) -> list[dict[str, torch.Tensor]]:
    """The code indices every diagnostics call sees (the trainer computes them; we recompute
    agreement and chance from them, independently of the diagnostics module)."""
    seen: list[dict[str, torch.Tensor]] = []
    real = trainer_module.level_diagnostics

    def spy(level, n_codes, indices, *args, **kwargs):
        if level == 0:
            seen.append({m: t.clone() for m, t in indices.items()})
        return real(level, n_codes, indices, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "level_diagnostics", spy)
    return seen


def test_cross_modal_code_agreement_rises_above_chance_without_collapse(tmp_path, monkeypatch):
    data = PlantedCorpus(n_clips=16, n_classes=4, word_dim=24, noise=0.3)
    config = TrainConfig(
        levels=2, epochs=3, batch_size=4, seed=0, n_embeddings=32, embedding_dim=32,
        audio_output_dim=16, video_output_dim=16, text_output_dim=16, level2_start=3,
        diagnostics_clips=16,
    )
    seen = _spy(monkeypatch)
    trainer = Trainer(config, data, tmp_path)
    trainer.diagnose()
    trainer.run()
    before, after = seen[0], seen[-1]

    def excess(codes) -> float:
        observed = float((codes["audio"] == codes["video"]).double().mean())
        return observed - _chance_agreement(codes["audio"], codes["video"], config.n_embeddings)

    # Collapse onto one code gives agreement 1 and chance 1: an excess of 0.
    assert excess(after) > excess(before) + 0.1
    # Four planted classes: a healthy model uses about one code per class (measured: 4 of 32 for
    # both modalities at seed 0); one or two codes would be a collapse.
    for modality in ("audio", "video"):
        used = torch.unique(after[modality]).numel()
        assert used >= 3, f"{modality} uses {used} codes after training: collapsed"
