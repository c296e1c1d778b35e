"""Mechanisms (paper section "Mechanisms"): where in the network a memorized continuation lives.

- `lens`       logit lens: the layer from which each true token is the model's top-1
- `ablation`   attention-head ablation scans (zero / mean), effects and their concentration
- `curvature`  K-FAC loss-curvature weight editing of MLP matrices, perplexity

Builds on `memkit.core` only (architecture facts in `memkit.core.arch`, hooks through
`memkit.core.hooks`); importing this package imports nothing (and no torch).
"""
