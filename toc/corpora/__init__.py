"""Built-in data in the real on-disk layouts: the synthetic corpora and the real-signal corpora
(spoken digits, spoken words, instruments: toc.corpora.kinds names them)."""
