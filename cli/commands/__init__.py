"""One module per command family; each exposes COMMANDS, the Click commands it defines.

COMMAND_MODULES says which module holds each command, so `toc` imports a module only when one
of its commands is asked for (cli/main.py).
"""

COMMAND_MODULES = {
    "train": "train",
    "encode": "encode",
    "report": "report",
    "compare": "report",
    "synth": "synth",
    "inspect": "codebook",
    "score": "codebook",
    "select": "codebook",
    "plot": "codebook",
    "health": "health",
    "eval": "eval",
    "synth-real": "corpus",
    "synth-spoken-digits": "corpus",
    "demo": "demo",
}
