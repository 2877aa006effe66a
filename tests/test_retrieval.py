"""Retrieval through the unified codes: metrics against independent computations, the tie rule,
clip vectors, the six layouts, and `toc eval retrieval` end to end."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from tests.fcid_fixtures import save_fcid_checkpoint, tiny_fcid_encoder
from tests.retrieval_fixtures import (
    WORD_DIM,
    write_clotho,
    write_flickrsoundnet,
    write_mscoco,
    write_msvd,
    write_paired,
    write_valor32k,
)
from toc.data.retrieval import load_retrieval_set
from toc.errors import ConfigError, DataError
from toc.eval.retrieval import (
    EncodedItems,
    average_precision_at,
    best_relevant_ranks,
    clip_vectors,
    cosine_similarity,
    relevance,
    retrieval_scores,
)
from toc.testing.checkpoints import save_reference_checkpoint


def _brute_force(similarity: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """The metrics written plainly with Python loops, for comparison."""
    ranks, aps = [], []
    for i in range(similarity.shape[0]):
        rel = [j for j in range(similarity.shape[1]) if relevant[i, j]]
        best = max(similarity[i, j] for j in rel)
        rank = 1 + sum(1 for j in range(similarity.shape[1]) if not relevant[i, j] and similarity[i, j] >= best)
        ranks.append(rank)
        order = sorted(range(similarity.shape[1]), key=lambda j: (-similarity[i, j], relevant[i, j], j))
        hits, ap = 0, 0.0
        for position, j in enumerate(order[:10], start=1):
            if relevant[i, j]:
                hits += 1
                ap += hits / position
        aps.append(ap / min(len(rel), 10))
    ranks_sorted = sorted(ranks)
    n = len(ranks)
    median = ranks_sorted[n // 2] if n % 2 else (ranks_sorted[n // 2 - 1] + ranks_sorted[n // 2]) / 2
    out = {f"R@{k}": 100.0 * sum(r <= k for r in ranks) / n for k in (1, 5, 10)}
    out.update({"median_rank": float(median), "mean_rank": sum(ranks) / n, "mAP@10": 100.0 * sum(aps) / n})
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_on_random_embeddings_equal_a_brute_force_computation(seed):
    rng = np.random.default_rng(seed)
    queries, gallery = rng.normal(size=(40, 12)), rng.normal(size=(40, 12))
    similarity = cosine_similarity(queries, gallery)
    relevant = relevance(np.arange(40), np.arange(40))
    by_hand = {}
    for i in range(40):
        for j in range(40):
            by_hand[i, j] = float(queries[i] @ gallery[j] / (np.linalg.norm(queries[i]) * np.linalg.norm(gallery[j])))
    assert max(abs(similarity[i, j] - v) for (i, j), v in by_hand.items()) < 1e-12
    _assert_equal(retrieval_scores(similarity, relevant).as_dict(), _brute_force(similarity, relevant))
    # Several relevant items per query (Clotho: five captions per clip), and a taller gallery.
    groups = rng.integers(0, 10, size=50)
    many = relevance(np.arange(10), groups)
    keep = many.any(axis=1)
    sim = cosine_similarity(rng.normal(size=(10, 6)), rng.normal(size=(50, 6)))[keep]
    _assert_equal(retrieval_scores(sim, many[keep]).as_dict(), _brute_force(sim, many[keep]))


def _assert_equal(ours: dict, expected: dict) -> None:
    """Ranks and R@k exactly; mAP@10 up to the order of a float sum."""
    assert {k: v for k, v in ours.items() if k != "mAP@10"} == {k: v for k, v in expected.items() if k != "mAP@10"}
    assert ours["mAP@10"] == pytest.approx(expected["mAP@10"], rel=1e-12, abs=1e-12)


def test_planted_one_to_one_match_is_retrieved_at_rank_one():
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(64, 32))
    queries = gallery + 1e-3 * rng.normal(size=gallery.shape)
    scores = retrieval_scores(cosine_similarity(queries, gallery[::-1][::-1]), relevance(np.arange(64), np.arange(64)))
    assert scores.recall == {1: 100.0, 5: 100.0, 10: 100.0}
    assert scores.median_rank == scores.mean_rank == 1.0 and scores.map_at_10 == 100.0
    # The same match found through a permuted gallery.
    order = rng.permutation(64)
    scores = retrieval_scores(cosine_similarity(queries, gallery[order]), relevance(np.arange(64), order))
    assert scores.recall[1] == 100.0


def test_ties_count_against_the_query():
    similarity = np.ones((4, 4))  # a collapsed representation: every item looks the same
    scores = retrieval_scores(similarity, np.eye(4, dtype=bool))
    assert scores.recall[1] == 0.0 and scores.median_rank == 4.0 and scores.tied_queries == 4
    assert best_relevant_ranks(np.array([[0.5, 0.5, 0.1]]), np.array([[False, True, False]])).tolist() == [2]
    assert best_relevant_ranks(np.array([[0.5, 0.5, 0.1]]), np.array([[True, True, False]])).tolist() == [1]
    # AP@10 on the pessimistic order: the relevant item sits after the tied irrelevant one.
    assert average_precision_at(np.array([[0.5, 0.5]]), np.array([[False, True]])).tolist() == [0.5]
    # Two clips, two captions each (identity-like): R@1 = 100, median rank 1; swapped: R@1 = 0.
    captions = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    clips = np.array([[1.0, 0.0], [0.0, 1.0]])
    relevant = relevance(np.array([0, 1]), np.array([0, 0, 1, 1]))
    assert retrieval_scores(cosine_similarity(clips, captions), relevant).recall[1] == 100.0
    assert retrieval_scores(cosine_similarity(clips[::-1], captions), relevant).recall[1] == 0.0
    assert cosine_similarity(np.zeros((1, 3)), np.ones((2, 3))).tolist() == [[0.0, 0.0]]
    with pytest.raises(ConfigError, match="at least one relevant"):
        best_relevant_ranks(np.ones((1, 2)), np.zeros((1, 2), dtype=bool))


def test_clip_vectors():
    codebook = np.arange(12.0).reshape(4, 3)
    codes = [[np.array([0, 1, 1]), np.array([3, 3])]]
    means = [np.stack([codebook[c].mean(0) for c in codes[0]])]
    items = EncodedItems("audio", np.arange(2), codes, means)
    assert np.array_equal(clip_vectors(items, "codewords", [0], [None], [4]), means[0])
    assert np.array_equal(clip_vectors(items, "codewords", [0], [np.array([2, 0])], [4]), means[0][:, [2, 0]])
    histogram = clip_vectors(items, "histogram", [0], [None], [4])
    assert histogram.tolist() == [[1 / 3, 2 / 3, 0, 0], [0, 0, 0, 1]]
    fcid = EncodedItems("audio", np.arange(2), codes, means, clip_codewords=np.ones((2, 3)))
    assert np.array_equal(clip_vectors(fcid, "codewords", [0], [None], [4]), np.ones((2, 3)))


def test_the_six_layouts(tmp_path):
    write_paired(tmp_path / "pairs.h5", n=5)
    paired = load_retrieval_set("paired", pairs=tmp_path / "pairs.h5")
    assert paired.modalities == ("audio", "video", "text") and paired.items["text"].ids[0] == "clip0"
    assert paired.items["video"].read(2).shape == (10, 7, 7, 512)
    rows = write_clotho(tmp_path)
    clotho = load_retrieval_set("clotho", data_root=tmp_path)
    assert len(clotho.items["audio"]) == 10 and len(clotho.items["text"]) == 50
    assert clotho.items["text"].groups[:6].tolist() == [0, 0, 0, 0, 0, 1]
    assert clotho.items["text"].ids[5] == rows[1][1] and clotho.items["audio"].read(1).shape == (9, 128)
    quirk = load_retrieval_set("clotho", data_root=tmp_path, protocol="reference")
    assert len(quirk.items["audio"]) == 2 and len(quirk.items["text"]) == 10 and "Q9" in quirk.notes[0]
    write_mscoco(tmp_path)
    coco = load_retrieval_set("mscoco", data_root=tmp_path)
    assert coco.items["video"].ids == ("000000000042", "000000000007")
    assert coco.items["text"].groups.tolist() == [0, 1, 0] and coco.items["video"].read(0).shape == (1, 7, 7, 512)
    write_flickrsoundnet(tmp_path)
    flickr = load_retrieval_set("flickrsoundnet", data_root=tmp_path)
    assert flickr.modalities == ("audio", "video") and flickr.items["audio"].ids == ("s0", "s1", "s2")
    write_msvd(tmp_path)
    msvd = load_retrieval_set("msvd", data_root=tmp_path)
    assert msvd.items["video"].ids == ("vidA", "vidB") and msvd.items["text"].groups.tolist() == [0, 1, 0]
    write_valor32k(tmp_path)
    valor = load_retrieval_set("valor32k", data_root=tmp_path)
    assert valor.modalities == ("audio", "video", "text") and valor.items["audio"].read(0).shape == (11, 128)
    with pytest.raises(ConfigError, match="no split"):
        load_retrieval_set("valor32k", data_root=tmp_path, split="dev")


def test_layout_errors_are_one_line(tmp_path):
    write_msvd(tmp_path)
    (tmp_path / "MSVD/MSVD/feature/zip/vidB.zip").unlink()
    with pytest.raises(DataError, match="missing feature zip for 'vidB'") as error:
        load_retrieval_set("msvd", data_root=tmp_path)
    assert "\n" not in str(error.value)
    write_valor32k(tmp_path)
    with h5py.File(tmp_path / "VALOR32K/text_features.h5", "w") as handle:
        handle["captions"] = np.array(["a bell rings"], dtype=h5py.string_dtype("utf-8"))
        handle["features"] = np.zeros((1, 10, 4))
    with pytest.raises(DataError, match="no word vectors for caption 'a dog barks'"):
        load_retrieval_set("valor32k", data_root=tmp_path)
    write_paired(tmp_path / "one.h5", modalities=("audio",))
    with pytest.raises(DataError, match="needs two modalities"):
        load_retrieval_set("paired", pairs=tmp_path / "one.h5")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def lines(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]


def _write_encoded(path, modality, codes, codebook, family="dcid-avt"):
    with h5py.File(path, "w") as handle:
        handle.attrs["modality"] = modality
        handle.attrs["family"] = family
        handle["level0/codes"] = codes
        handle["level0/quantized"] = codebook[codes]


def test_cli_planted_match_through_the_codes(tmp_path):
    rng = np.random.default_rng(5)
    codebook = rng.normal(size=(400, 256))
    codes = rng.integers(0, 400, size=(30, 10))  # every clip its own code sequence
    _write_encoded(tmp_path / "audio.h5", "audio", codes, codebook)
    _write_encoded(tmp_path / "text.h5", "text", codes, codebook)
    rows = lines(invoke("eval", "retrieval", "--encoded", tmp_path / "audio.h5", "--encoded", tmp_path / "text.h5"))
    assert [(r["direction"], r["vectors"]) for r in rows] == [("a2t", "codewords"), ("a2t", "histogram")]
    for row in rows:
        assert row["metrics"]["R@1"] == 100.0 and row["metrics"]["median_rank"] == 1.0 and row["n_queries"] == 30


def test_cli_paired_layout_equals_toc_encode_and_numpy(tmp_path):
    ckpt = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", text_dim=WORD_DIM)
    write_paired(tmp_path / "pairs.h5", n=12, modalities=("audio", "text"))
    rows = lines(invoke("eval", "retrieval", "--checkpoint", ckpt, "--pairs", tmp_path / "pairs.h5",
                        "--dtype", "float64"))
    assert [(r["direction"], r["vectors"]) for r in rows] == [
        ("a2t", "codewords"), ("a2t", "histogram"), ("t2a", "codewords"), ("t2a", "histogram")]
    vectors = {}
    with h5py.File(tmp_path / "pairs.h5") as handle:
        for modality in ("audio", "text"):
            np.save(tmp_path / f"{modality}.npy", np.asarray(handle[modality]))
    for modality in ("audio", "text"):
        result = invoke("encode", ckpt, "--modality", modality, "--input", tmp_path / f"{modality}.npy",
                        "-o", tmp_path / f"{modality}.h5", "--dtype", "float64")
        assert result.exit_code == 0, result.output
        with h5py.File(tmp_path / f"{modality}.h5") as handle:
            vectors[modality] = np.asarray(handle["level0/quantized"]).mean(axis=1)
    expected = _brute_force(cosine_similarity(vectors["audio"], vectors["text"]), np.eye(12, dtype=bool))
    assert rows[0]["metrics"] == pytest.approx({k: round(v, 6) for k, v in expected.items()}, abs=1e-6)
    # The same through the two `toc encode` files.
    again = lines(invoke("eval", "retrieval", "--encoded", tmp_path / "audio.h5", "--encoded", tmp_path / "text.h5",
                         "--vectors", "codewords"))
    assert again[0]["metrics"] == rows[0]["metrics"]


def test_cli_fcid_uses_the_clip_codeword_and_toc_channels(tmp_path):
    encoder = tiny_fcid_encoder(text_dim=WORD_DIM, audio_dim=128, video_dim=512, se_hidden=64, video_att_dim=256)
    ckpt = save_fcid_checkpoint(tmp_path / "fcid.pt", encoder)
    write_paired(tmp_path / "pairs.h5", n=8)
    rows = lines(invoke("eval", "retrieval", "--checkpoint", ckpt, "--pairs", tmp_path / "pairs.h5", "--direction",
                        "v2t", "--channels", "8", "--max-num", "1", "--min-num", "0", "--score", "sim_only",
                        "--dtype", "float64"))
    codewords, histogram = rows
    assert codewords["variant"] == "fcid+toc" and len(codewords["channels"][0]) == 8 and histogram["variant"] == "fcid"
    with h5py.File(tmp_path / "pairs.h5") as handle:
        video, text = (torch.from_numpy(np.asarray(handle[m])) for m in ("video", "text"))
    with torch.no_grad():
        v, _ = encoder.encode_clip("video", video)
        t, _ = encoder.encode_clip("text", text)
    channels = codewords["channels"][0]
    expected = _brute_force(cosine_similarity(v.numpy()[:, channels], t.numpy()[:, channels]), np.eye(8, dtype=bool))
    assert codewords["metrics"] == pytest.approx({k: round(x, 6) for k, x in expected.items()}, abs=1e-6)


def test_cli_layouts_and_errors(tmp_path):
    ckpt = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", text_dim=WORD_DIM)
    write_clotho(tmp_path / "data")
    rows = lines(invoke("eval", "retrieval", "--checkpoint", ckpt, "--layout", "clotho", "--data-root", tmp_path / "data",
                        "--vectors", "histogram", "--protocol", "reference"))
    assert [r["direction"] for r in rows] == ["a2t", "t2a"] and rows[0]["n_queries"] == 2 and rows[1]["n_gallery"] == 2
    assert any("Q9" in n for n in rows[0]["notes"])
    usage = [
        ["--pairs", "x.h5"],  # no checkpoint
        ["--checkpoint", ckpt],  # paired layout without --pairs
        ["--checkpoint", ckpt, "--pairs", "x.h5", "--direction", "a2x"],
        ["--checkpoint", ckpt, "--pairs", "x.h5", "--vectors", "pixels"],
        ["--encoded", "a.h5"],
        ["--checkpoint", ckpt, "--layout", "msvd"],
    ]
    for extra in usage:
        result = invoke("eval", "retrieval", *extra)
        assert result.exit_code == 2, (extra, result.output)
    result = invoke("eval", "retrieval", "--checkpoint", ckpt, "--layout", "valor32k", "--data-root", tmp_path / "data")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1 and "annotations" in result.stderr


def test_synthetic_corpus_has_a_retrieval_set(tmp_path):
    from toc.corpora.synthetic import RETRIEVAL_PAIRS, synthesize

    summary = synthesize(tmp_path / "synth", scale=0.02, seed=3)
    n = summary.counts["retrieval"]
    valor = load_retrieval_set("valor32k", data_root=tmp_path / "synth")
    paired = load_retrieval_set("paired", pairs=tmp_path / "synth" / RETRIEVAL_PAIRS)
    assert len(valor.items["video"]) == len(paired.items["video"]) == n and len(set(valor.items["text"].ids)) == n
    for modality in ("audio", "video", "text"):
        assert np.array_equal(valor.items[modality].read(n - 1), paired.items[modality].read(n - 1)), modality
    ckpt = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", with_text_lstm=True)
    rows = lines(invoke("eval", "retrieval", "--checkpoint", ckpt, "--layout", "valor32k", "--data-root",
                        tmp_path / "synth", "--vectors", "histogram"))
    assert [r["direction"] for r in rows] == ["a2t", "t2a", "v2t", "t2v", "a2v", "v2a"]
    assert all(r["n_queries"] == r["n_gallery"] == n for r in rows)
