"""The paper: experiment grids, sample selections, benchmarks and the writers of figures, tables, macros.

- `experiments`  model x prompting-mode grids and memorization verdicts (Table 1, Figure 1)
- `sets`         memorized vs control samples and generic text for the mechanism notebooks
- `report`       every LaTeX / format helper: figures, booktabs tables, macros, number formats
- `tokens`       per-token view of one continuation (the explore notebook)
- `bench`        extraction benchmark: HF generate vs memkit vs the teacher-forced floor
- `nb`           notebook setup and shared helpers (labels, macro keys, records)
- `*_runs`       one experiment driver per notebook: `census_runs` (tab_census), `dynamics_runs`
                 (fig_phase, fig_layers), `shock_runs` (tab_shock), `dup_runs` (fig_dup_scaling),
                 `checkpoint_runs` (fig_checkpoints), `context_runs` (fig_context), `latent_runs` (tab_latent),
                 `mia_runs` (tab_mia), `mia_real` (tab_mia_real),
                 `scale_runs` (fig_scale), `lens_runs`, `heads_runs`, `editing_runs` (mechanisms),
                 with `mechanism_models` (which models they run) and `provenance` (the appendix stamp)
- `dynamics_figures` the figures of fig_phase and fig_layers
- `controls`     controls matched on the confidence of the clean continuation
- `token_html`   coloured continuation of the explore notebook

May import every analysis package (`core`, `dynamics`, `organisms`, `mechanisms`, `mia`);
only the notebooks and the command line build on it. Importing this package imports nothing.
"""
