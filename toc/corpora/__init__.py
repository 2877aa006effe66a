"""Built-in data in the real on-disk layouts: the synthetic corpus and the spoken-digits corpus."""
