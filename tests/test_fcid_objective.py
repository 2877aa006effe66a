"""FCID decoder and pretraining objective: layout, and each term against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hdcid.fcid import FCID_DEFAULT_SIZES
from hdcid.fcid_decoders import FcidDecoder
from hdcid.fcid_objective import TERMS, FcidObjective, one_way_info_nce
from hdcid.losses import CrossCPC
from tests.fcid_fixtures import TINY_FCID, tiny_fcid_encoder, tiny_fcid_inputs


@pytest.fixture(scope="module")
def batch():
    encoder = tiny_fcid_encoder()
    inputs = tiny_fcid_inputs(encoder, batch=4)
    torch.manual_seed(3)
    objective = FcidObjective(encoder.sizes).double()
    return encoder, objective, inputs


def test_default_decoder_layout():
    with torch.device("meta"):
        decoder = FcidDecoder(FCID_DEFAULT_SIZES)
    state = decoder.state_dict()
    assert len(state) == 26 and sum(t.numel() for t in state.values()) == 37_490_816
    assert tuple(state["v_fine_decoder.inverse_conv_block.0.weight"].shape) == (2304, 1024, 3, 3)
    assert list(state)[-2:] == ["t_coarse_decoder.simple_linear.weight", "t_coarse_decoder.simple_linear.bias"]


def test_reconstructions_have_the_input_shapes(batch):
    encoder, objective, inputs = batch
    out = encoder(inputs["audio"], inputs["video"], inputs["text"])
    rebuilt_video = objective.decoder.v_fine_decoder(out.v_spe_result, out.v_gen_result)
    rebuilt_audio = objective.decoder.a_fine_decoder(out.a_spe_result, out.a_gen_result)
    assert rebuilt_video.shape == inputs["video"].shape and rebuilt_audio.shape == inputs["audio"].shape
    fine = objective.decoder.fine_losses(inputs["audio"], inputs["video"], out)
    assert torch.equal(fine["audio"], ((rebuilt_audio - inputs["audio"]) ** 2).mean())
    coarse = objective.decoder.coarse_losses(out)
    text = objective.decoder.t_coarse_decoder
    by_hand = text.simple_rec(torch.cat([text.simple_linear(out.c_t_vq[:, 0]), out.coarse_t_spe_result], -1))
    assert torch.allclose(coarse["text"], ((by_hand - out.coarse_t_result) ** 2).mean(), rtol=0, atol=1e-15)


def test_one_way_info_nce_by_hand():
    generator = torch.Generator().manual_seed(0)
    query, keys = torch.randn(5, 8, generator=generator, dtype=torch.float64), torch.randn(5, 8, generator=generator, dtype=torch.float64)
    total = 0.0
    for i in range(5):
        logits = [float(F.cosine_similarity(query[i], keys[j], dim=0)) / 0.1 for j in range(5)]
        total += -(logits[i] - math.log(sum(math.exp(v) for v in logits)))
    assert one_way_info_nce(query, keys).item() == pytest.approx(total / 5, rel=1e-12)
    # One direction only: swapping query and keys changes the value.
    assert abs(one_way_info_nce(keys, query).item() - total / 5) > 1e-6


def test_two_modality_cpc_by_hand():
    generator = torch.Generator().manual_seed(1)
    audio, video = (torch.randn(3, 10, 8, generator=generator, dtype=torch.float64) for _ in range(2))
    cpc = CrossCPC(8, 8, 8, 2, modalities=("video", "audio")).double()
    assert not hasattr(cpc, "text_ar_lstm")
    torch.manual_seed(5)
    nce = cpc(audio, video).nce
    torch.manual_seed(5)
    t = int(torch.randint(8, (1,))) + 1  # the same draw: one step in 1..8
    contexts = {}
    for name, x in (("audio", audio), ("video", video)):
        lstm = getattr(cpc, f"{name}_ar_lstm")
        contexts[name] = getattr(cpc, f"{name}_predictors")[0](lstm(x[:, : t + 1])[0][:, t])
    futures = {"audio": audio[:, t + 1], "video": video[:, t + 1]}

    def diag(x, y):
        return torch.diagonal(F.log_softmax(futures[x] @ contexts[y].t(), dim=1)).sum()

    expected = -(diag("video", "audio") + diag("audio", "video") + 0.1 * diag("video", "video") + 0.1 * diag("audio", "audio")) / 3
    assert nce.item() == pytest.approx(expected.item(), rel=1e-12)


def test_coarse_club_sums_over_rows(batch):
    """The 2-D (per clip) bound: feature means, a sum over rows, one permutation of the rows."""
    encoder, objective, inputs = batch
    with torch.no_grad():
        out = encoder(inputs["audio"], inputs["video"], inputs["text"])
        x, y = out.coarse_t_gen_result, out.coarse_t_spe_result
        torch.manual_seed(11)
        got = objective.Text_mi_net.mi_est(x, y)
        torch.manual_seed(11)
        permutation = torch.randperm(x.shape[0])
        mu, logvar = objective.Text_mi_net.get_mu_logvar(x)
        rows = (-((mu - y) ** 2).mean(1) + ((mu - y[permutation]) ** 2).mean(1)) / logvar.mean(1).exp()
    assert got.item() == pytest.approx(0.5 * rows.sum().item(), rel=1e-12)


def test_loss_terms_sum_to_the_total_and_train_the_encoder(batch):
    encoder, objective, inputs = batch
    encoder.train()
    try:
        out = encoder(inputs["audio"], inputs["video"], inputs["text"])
        loss = objective.loss_terms(out, inputs["audio"], inputs["video"])
    finally:
        encoder.eval()
    terms, total = loss.terms, loss.total
    assert list(terms) == list(TERMS)
    assert total.dim() == 0 and total.dtype == torch.float64
    assert terms["f_embedding"].item() == 0.0 and terms["f_cmcm"].item() == 0.0
    assert total.item() == pytest.approx(sum(terms[n].item() for n in TERMS), rel=1e-12)
    assert all(torch.isfinite(v) for v in terms.values())
    assert set(loss.cpc_accuracy) == {"av", "va", "aa", "vv"}
    total.backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    for used in ("va2vat.linear.weight", "t2vat.linear.weight", "a_self_att.encoder.layers.0.linear1.weight",
                 "v_spe_encoder.conv_stack.0.weight", "t_spe_encoder.input_linear.weight"):
        assert grads[used] is not None and grads[used].abs().sum() > 0, used
    assert grads["a_self_att.encoder_layer.linear1.weight"] is None  # the template never runs
    assert objective.decoder.v_fine_decoder.video_linear.weight.grad is not None
    encoder.zero_grad(set_to_none=True)


def test_club_learning_never_reaches_the_encoder(batch):
    encoder, objective, inputs = batch
    out = encoder(inputs["audio"], inputs["video"], inputs["text"])
    losses = objective.club_learning_losses(out)
    assert list(losses) == ["video", "audio", "audiovisual", "text"]
    sum(losses.values()).backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert objective.AudioVisual_mi_net.p_mu[0].weight.grad is not None
    assert objective.Text_mi_net.p_mu[-1].out_features == TINY_FCID["text_output_dim"]
    objective.zero_grad(set_to_none=True)
