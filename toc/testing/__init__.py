"""Small inputs built in code, for tests and benchmarks (as numpy.testing and torch.testing are):
the published data layouts in miniature (`datafixtures`), tiny checkpoints in the reference
format (`checkpoints`) and hostile files that the readers must refuse in one line (`hostile`).
The test suite and the benchmarks both import these; benchmarks never import the test suite."""
