"""DCID / H-DCID / FCID: the encoders, their codebooks and pretraining (imports only torch and
numpy). `hdcid.vocabulary` names the choices without importing torch."""
