"""Everything about a pretrained codebook: loading checkpoints safely, TOC channel scores and
selection, encoding features into codes, and what a codebook file holds."""
