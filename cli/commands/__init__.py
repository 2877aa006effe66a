"""One module per command family; each exposes COMMANDS, the Click commands it defines."""

from cli.commands import codebook, corpus, demo, encode, eval, health, report, synth, train

COMMANDS = [
    *train.COMMANDS,
    *encode.COMMANDS,
    *report.COMMANDS,
    *synth.COMMANDS,
    *codebook.COMMANDS,
    *health.COMMANDS,
    *eval.COMMANDS,
    *corpus.COMMANDS,
    *demo.COMMANDS,
]
