"""Controlled dynamics (paper section "Dynamics"): how a recited continuation reacts to perturbations.

- `action_kinds`  the vocabulary of actions (kinds, families), importable without torch
- `actions`       the actions themselves: token, embedding and logit perturbations of magnitude alpha
- `perturb`       perturbed extraction, mid-sequence shocks, clean-vs-perturbed observables
- `sweeps`        batched alpha / layer / shock sweeps and the memorized-vs-control samples they run on
- `transitions`   sigmoid fits, bootstrap alpha*, transition tables and robustness rankings (no torch)

Builds on `memkit.core` only; importing this package imports nothing (and no torch).
"""
