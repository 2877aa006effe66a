"""DCID / H-DCID: the encoders, their codebooks and pretraining (imports only torch and numpy).

Modules that moved keep importing under their old names (the same module object, loaded only
when asked for): `hdcid.train` is the package `hdcid.training`, and `hdcid.files` the shared
`cmg_base.files`.
"""

from cmg_base.aliases import install_aliases

MOVED_MODULES = {
    "hdcid.train": "hdcid.training",
    "hdcid.files": "cmg_base.files",
}

install_aliases(MOVED_MODULES)
