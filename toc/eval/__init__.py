"""Cross-modal downstream evaluation: tasks, the encode-once cache, variants, heads, protocols,
metrics, result records and the loop that ties them together."""
