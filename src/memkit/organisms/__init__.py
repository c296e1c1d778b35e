"""Model organisms (paper section "Organisms"): small models trained on a known, canary-laced stream.

- `corpus`    the background corpus (KJV chapters) and its tokenizer
- `canaries`  canary texts, insertion into the training stream, manifests, extraction samples
- `train`     the deterministic Pythia-architecture training loop and its checkpoints
- `zoo`       profiles of several sizes trained on one stream, `zoo:` model specs, zoo extraction
- `laws`      seed-level rates, dose fits (logistic / log-linear / step) and the size-trend test
- `latent`    latent memorization: greedy match of every canary under weight-noise draws
- `latent_null` its permutation null: never-inserted controls as matched pseudo-canaries (pure pandas)

Builds on `memkit.core` only; importing this package imports nothing (and no torch).
"""
