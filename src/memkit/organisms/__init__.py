"""Model organisms (paper section "Organisms"): small models trained on a known, canary-laced stream.

- `corpus`    the background corpus (KJV chapters) and its tokenizer
- `canaries`  canary texts, insertion into the training stream, manifests, extraction samples
- `train`     the deterministic Pythia-architecture training loop and its checkpoints
- `zoo`       profiles of several sizes trained on one stream, `zoo:` model specs, zoo extraction
- `laws`      duplication laws (log-linear fits) and extraction onsets over checkpoints
- `latent`    latent memorization: recovery of hidden canaries under weight noise

Builds on `memkit.core` only; importing this package imports nothing (and no torch).
"""
