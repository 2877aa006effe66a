"""Cross-CPC, CLUB, InfoNCE alignment; the MM-EMA update and the dead-code reset on hand examples."""

from __future__ import annotations

import json

import pytest
import torch

from hdcid.losses import (
    CLUBSampleGroup,
    CrossCPC,
    alignment_loss,
    identical_rows,
    info_nce,
    modality_gap_loss,
)
from hdcid.modules import text_lstm
from hdcid.quantizer import CrossQuantizer
from tests.conftest import reference_file


def _reference_listing(title_start: str) -> list[tuple[str, tuple[int, ...]]]:
    """The reference module's state_dict keys and shapes, in order (tests/fixtures/cmg-reference)."""
    listings = json.loads(reference_file("auxiliary_state_dict_listings.json").read_text())
    (title,) = [t for t in listings if t.startswith(title_start)]
    return [(key, tuple(shape)) for key, shape in listings[title].items()]


def test_cpc_keys_match_reference_listing():
    with torch.device("meta"):
        cpc = CrossCPC(256, 256, 256, 2)
    assert [(k, tuple(v.shape)) for k, v in cpc.state_dict().items()] == _reference_listing("Cross_CPC_AVT")


@pytest.mark.parametrize("y_dim,title", [(512, "CLUBSample_group(x_dim=256,y_dim=512"), (256, "CLUBSample_group(x_dim=256,y_dim=256")])
def test_club_keys_match_reference_listing(y_dim, title):
    with torch.device("meta"):
        club = CLUBSampleGroup(256, y_dim, 256)
    assert [(k, tuple(v.shape)) for k, v in club.state_dict().items()] == _reference_listing(title)


def test_cpc_finite_with_gradients_and_accuracies():
    torch.manual_seed(0)
    cpc = CrossCPC(16, 32, 32, 2)
    feats = [torch.randn(4, 10, 16, requires_grad=True) for _ in range(3)]
    out = cpc(*feats)
    assert torch.isfinite(out.nce)
    assert set(out.accuracy) == {"av", "at", "vt", "va", "ta", "tv", "aa", "vv", "tt"}
    assert all(0.0 <= v <= 1.0 for v in out.accuracy.values())
    out.nce.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)


def test_cpc_prefers_predictable_pairs():
    # Identical modalities with an identity predictor: the true future scores highest → nce lower.
    torch.manual_seed(0)
    cpc = CrossCPC(8, 8, 8, 1)
    x = torch.randn(6, 10, 8)
    same = cpc(x, x, x).nce
    shuffled = cpc(x, x[torch.randperm(6)], x[torch.randperm(6)]).nce
    assert torch.isfinite(same) and torch.isfinite(shuffled)


def test_club_formulas_match_hand_computation():
    torch.manual_seed(0)
    club = CLUBSampleGroup(4, 3, 8).double()
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    mu, logvar = club.get_mu_logvar(x)
    expected_lld = ((-(mu - y) ** 2 / logvar.exp() - logvar).sum(-1) / 2).mean()
    assert torch.allclose(club.loglikeli(x, y), expected_lld)
    torch.manual_seed(3)
    value = club.mi_est(x, y)
    torch.manual_seed(3)
    perm = torch.randperm(5)
    pos = -((mu - y) ** 2).mean(1)
    neg = -((mu - y[perm]) ** 2).mean(1)
    expected = ((pos - neg) / logvar.mean(1).exp()).sum(-1).mean() / 2
    assert torch.allclose(value, expected)
    value.backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    # The estimator itself trains on loglikeli: gradients reach its parameters.
    club.zero_grad()
    club.learning_loss(x.detach(), y.detach()).backward()
    assert all(p.grad is not None for p in club.parameters())


def test_info_nce_rewards_alignment_and_masks_duplicates():
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    aligned = info_nce(x, x + 0.01 * torch.randn(8, 16))
    random = info_nce(x, torch.randn(8, 16))
    assert aligned < random
    text = torch.zeros(4, 10, 3)
    text[2:] = 1.0
    same = identical_rows(text)
    assert same.tolist() == [[True, True, False, False], [True, True, False, False], [False, False, True, True], [False, False, True, True]]
    semantic = {m: torch.randn(4, 10, 8, requires_grad=True) for m in ("audio", "video", "text")}
    loss = alignment_loss(semantic, 0.1, same)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(v.grad.abs().sum() > 0 for v in semantic.values())


def test_euclidean_info_nce_equals_cosine_on_unit_vectors_but_sees_offsets_only_via_gap_term():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    y = torch.nn.functional.normalize(x + 0.3 * torch.randn(8, 16), dim=-1)
    # ‖x − y‖² = 2 − 2 cos for unit rows, and s² = 1: the logits differ by a constant only.
    assert torch.allclose(info_nce(x, y, 0.1, distance="euclidean"), info_nce(x, y, 0.1), atol=1e-5)
    # A constant offset between the modalities barely moves InfoNCE, which is why the gap term exists.
    shifted = y + 3.0
    semantic = {"audio": x.reshape(2, 4, 16), "video": y.reshape(2, 4, 16)}
    offset = {"audio": x.reshape(2, 4, 16), "video": shifted.reshape(2, 4, 16)}
    assert float(modality_gap_loss(semantic)) < 0.1 < float(modality_gap_loss(offset))
    same = {"audio": x.reshape(2, 4, 16), "video": x.reshape(2, 4, 16).clone()}
    assert float(modality_gap_loss(same)) == 0.0
    grad_in = {m: v.clone().requires_grad_(True) for m, v in offset.items()}
    modality_gap_loss(grad_in).backward()
    assert grad_in["video"].grad.abs().sum() > 0


def test_mm_ema_update_equals_formula_on_hand_example():
    q = CrossQuantizer(n_embeddings=2, embedding_dim=2).double()
    q.embedding = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    q.ema_weight = q.embedding.clone()
    q.ema_count = torch.zeros(2, dtype=torch.float64)
    q.train()
    # One clip, one time step: audio near code 0, video near code 1, text near code 0.
    a = torch.tensor([[[0.1, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[[0.9, 1.0]]], dtype=torch.float64)
    t = torch.tensor([[[0.0, 0.2]]], dtype=torch.float64)
    out = q.quantize_level({"audio": a, "video": v, "text": t}, 0, cmcm=False)
    assert out.indices["audio"].tolist() == [0] and out.indices["video"].tolist() == [1]
    g, eps, m = 0.99, 1e-5, 2
    count = torch.zeros(2, dtype=torch.float64)
    weight = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    xa, xv, xt = a[0, 0], v[0, 0], t[0, 0]
    for own, partners, code in ((xa, (xv, xt), 0), (xv, (xa, xt), 1), (xt, (xa, xv), 0)):
        hot = torch.zeros(2, dtype=torch.float64)
        hot[code] = 1.0
        count = g * count + (1 - g) * hot
        n = count.sum()
        count = (count + eps) / (n + m * eps) * n
        pulled = torch.zeros(2, 2, dtype=torch.float64)
        pulled[code] = 0.5 * own + 0.25 * partners[0] + 0.25 * partners[1]
        weight = g * weight + (1 - g) * pulled
    assert torch.allclose(q.ema_count, count, atol=0, rtol=1e-12)
    assert torch.allclose(q.ema_weight, weight, atol=0, rtol=1e-12)
    assert torch.allclose(q.embedding, weight / count.unsqueeze(-1), rtol=1e-12)
    # Outputs are the pre-update codewords.
    assert torch.equal(out.quantized["audio"].detach()[0, 0], torch.tensor([0.0, 0.0], dtype=torch.float64))


def test_dead_code_reset_revives_a_parked_code():
    q = CrossQuantizer(n_embeddings=3, embedding_dim=256).double().eval()
    q.set_reset_policy(reset_after=3, active_within=2)
    base = torch.zeros(256, dtype=torch.float64)
    q.embedding = torch.stack([base, base + 1.0, base + 500.0])  # code 2 parked far away
    features = {"audio": torch.zeros(1, 2, 256, dtype=torch.float64) + 0.01}
    features["video"] = features["audio"].clone()
    features["audio"][0, 1] = 1.0
    # The counter starts at -1, so the parked code passes reset_after=3 on the fifth batch.
    for _ in range(4):
        q.quantize_level(features, 0, cmcm=False)
    assert float(q.embedding[2].min()) == 500.0
    q.quantize_level(features, 0, cmcm=False)
    revived = q.embedding[2]
    distances = [float((revived - q.embedding[i]).abs().max()) for i in (0, 1)]
    assert min(distances) <= 1.0 / 1024 + 1e-12  # now a noisy copy of an active code
    assert q.unactivated_count[2] == 0


def test_reset_can_keep_ema_consistent():
    q = CrossQuantizer(n_embeddings=3, embedding_dim=4, reset_noise_width=None).double().train()
    q.set_reset_policy(reset_after=2, active_within=2, updates_ema=True)
    q.embedding = torch.tensor([[0.0] * 4, [1.0] * 4, [500.0] * 4], dtype=torch.float64)
    q.ema_weight = q.embedding.clone()
    q.ema_count = torch.ones(3, dtype=torch.float64)
    x = torch.tensor([[[0.0] * 4, [1.0] * 4]], dtype=torch.float64)
    for _ in range(4):
        q.quantize_level({"audio": x, "video": x.clone()}, 0, cmcm=False)
    assert float(q.embedding[2].abs().max()) < 2.0  # the reset survived the following EMA steps
    assert torch.allclose(q.embedding[2], q.ema_weight[2] / q.ema_count[2])


def test_text_lstm_keys_match_reference_listing():
    with torch.device("meta"):
        lstm = text_lstm(768, 128)
    assert [(k, tuple(v.shape)) for k, v in lstm.state_dict().items()] == _reference_listing("nn.LSTM(768,128")
