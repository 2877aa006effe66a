"""On a tiny planted-structure corpus, training makes the modalities share codes."""

from __future__ import annotations

from hdcid.training import TrainConfig, Trainer
from tests.train_corpus import PlantedCorpus


def test_cross_modal_code_agreement_rises_during_training(tmp_path):
    data = PlantedCorpus(n_clips=16, n_classes=4, word_dim=24, noise=0.3)
    config = TrainConfig(
        levels=2, epochs=3, batch_size=4, seed=0, n_embeddings=32, embedding_dim=32,
        audio_output_dim=16, video_output_dim=16, text_output_dim=16, level2_start=3,
        diagnostics_clips=16,
    )
    trainer = Trainer(config, data, tmp_path)
    before = trainer.diagnose()[0]
    after = trainer.run().diagnostics[0]
    assert after.agreement_mean > before.agreement_mean + 0.1
    assert after.agreement["audio-video"] > before.agreement["audio-video"]
