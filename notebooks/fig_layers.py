# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Figures — layer sensitivity, and is memorized text more or less fragile?
#
# (1) Layer × α heatmap: retention (Biderman score of the perturbed continuation against the
# clean one, as in `fig_phase`) when an embedding action (default: a random direction of norm
# α × mean |h_ℓ|) is added to the residual stream after block ℓ, for the attractors each model
# recites and for the non-memorized controls; white marks: the fitted critical α*(ℓ).
# (2) Fragility profiles under the *same* actions: the relative state distance |h − h̃|/|h| per
# layer (averaged over the continuation positions) and KL(p_clean ‖ p_perturbed) per continuation
# step, memorized vs controls side by side (`memkit.perturb.observe`).
#
# Outputs (into `out_dir`): `fig_layers.pdf/.png`, `fig_fragility.pdf/.png`, `numbers_fig_layers.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_layers.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: every record
k = 32
m = 8
clean_m = 8  # suffix length of the clean runs that select the memorized samples (at least m)
threshold = 0.9
max_memorized = 2
max_controls = 2
heatmap_kind = "embed_random"  # an embedding kind without a learned direction (embed_random / embed_noise)
n_layers_shown = 2  # layers evenly spaced over 0..n_layers-1 (None: every layer)
alphas = [0, 0.5, 2]  # multiples of the mean hidden-state norm at the layer
model_alphas = {}  # per-model overrides of `alphas`
seeds = [0]
# the same actions on memorized and control samples; alpha: a number or {model spec: number}
profile_actions = [{"kind": "embed_random", "alpha": 0.5, "layer_frac": 0.25},
                   {"kind": "substitute_rare", "alpha": 0.25}]
sharp_below = 1.0
batch_size = 64
threads = 1
out_dir = "build/smoke/fig_layers"

# %%
import gc
import warnings

warnings.filterwarnings("ignore")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

import memkit
from memkit.dynamics.sweeps import dynamics_samples, fragility_profiles, layer_sweep, make_action
from memkit.dynamics.transitions import transition_table
from memkit.paper import report
from memkit.paper.report import format_alpha, macro_key
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_layers"
GROUPS = ["memorized", "control"]

# %% [markdown]
# ## Runs: layer × α sweep and the fragility profiles, per model

# %%
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]


def model_key(spec: str) -> str:
    return macro_names.get(spec) or macro_key(spec)


def action_label(spec: dict) -> str:
    where = f", layer {spec['layer']}" if spec.get("layer") is not None else ""
    return f"{spec['kind']} $\\alpha$={format_alpha(spec['alpha'], 3)}{where}"


sweeps, layer_profiles, step_profiles, selection, profile_specs = [], [], [], [], {}
for spec in models:
    lm = memkit.load_model(spec)
    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                                              max_memorized=max_memorized, max_controls=max_controls, batch_size=16)
    group_of = dict(zip(clean["id"], clean["id"].map(groups)))
    selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of))[["spec", "id", "group", "token_match"]])
    n = lm.n_layers
    layers = list(range(n)) if n_layers_shown is None else sorted({int(round(x)) for x in
                                                                    np.linspace(0, n - 1, n_layers_shown)})
    sweep = layer_sweep(lm, samples, clean, layers, model_alphas.get(spec, alphas), kind=heatmap_kind, seeds=seeds,
                        batch_size=batch_size)
    sweeps.append(sweep.drop(columns="generated_ids").assign(spec=spec, group=sweep["id"].map(group_of),
                                                             n_layers=n))
    for number, action_spec in enumerate(profile_actions):
        layer = (int(round(action_spec["layer_frac"] * (n - 1))) if "layer_frac" in action_spec
                 else action_spec.get("layer"))
        alpha = action_spec["alpha"]
        alpha = float(alpha[spec] if isinstance(alpha, dict) else alpha)
        resolved = {"kind": action_spec["kind"], "alpha": alpha, "layer": layer}
        profile_specs[(spec, number)] = resolved
        action = make_action(resolved["kind"], resolved["alpha"], layer=layer, seed=0)
        by_layer, by_step = fragility_profiles(lm, samples, clean, action)
        for frame, bucket in ((by_layer, layer_profiles), (by_step, step_profiles)):
            bucket.append(frame.assign(spec=spec, action=number, group=frame["id"].map(group_of)))
    del lm
    gc.collect()
sweeps = pd.concat(sweeps, ignore_index=True)
layer_profiles = pd.concat(layer_profiles, ignore_index=True)
step_profiles = pd.concat(step_profiles, ignore_index=True)
selection = pd.concat(selection, ignore_index=True)
selection.round(3)

# %% [markdown]
# ## Retention per layer × α (mean over samples) and the fitted α*(ℓ)

# %%
heat = sweeps.groupby(["spec", "group", "layer", "alpha"], sort=False)["retention"].mean().reset_index()
layer_fits = transition_table(sweeps, by=("spec", "group", "layer"), n_boot=0, sharp_below=sharp_below)
heat.pivot_table(index=["spec", "group", "layer"], columns="alpha", values="retention").reindex(
    index=pd.MultiIndex.from_frame(heat[["spec", "group", "layer"]].drop_duplicates())).round(3)

# %%
layer_fits[["spec", "group", "layer", "n_samples", "alpha_star", "verdict", "note"]].round(3)

# %% [markdown]
# ## Figure: layer sensitivity heatmaps

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
present = [(s, g) for s in models for g in GROUPS if ((heat["spec"] == s) & (heat["group"] == g)).any()]
ncols = max(1, len(present))
fig, axes = plt.subplots(1, ncols, figsize=(min(7.0, 1.9 * ncols + 0.6), 2.6), squeeze=False, constrained_layout=True)


def alpha_position(alpha: float, nonzero: list[float]) -> float:
    """Column coordinate of an alpha on the (0, geometric grid) axis."""
    if alpha <= 0:
        return 0.0
    return float(np.interp(np.log(alpha), np.log(nonzero), np.arange(1, len(nonzero) + 1)))


image = None
for ax, (spec, group) in zip(axes[0], present):
    part = heat[(heat["spec"] == spec) & (heat["group"] == group)]
    grid = sorted(part["alpha"].unique())
    nonzero = [a for a in grid if a > 0]
    matrix = part.pivot(index="layer", columns="alpha", values="retention").reindex(columns=grid)
    image = ax.imshow(matrix.to_numpy(), origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      extent=(-0.5, len(grid) - 0.5, -0.5, len(matrix) - 0.5))
    fits_here = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == group)].set_index("layer")
    ys = [i for i, layer in enumerate(matrix.index) if np.isfinite(fits_here.loc[layer, "alpha_star"])]
    xs = [alpha_position(fits_here.loc[matrix.index[i], "alpha_star"], nonzero) for i in ys]
    ax.plot(xs, ys, ls="none", marker="o", ms=3, mfc="white", mec="black", mew=0.5)
    ax.set_xticks(range(len(grid)), [format_alpha(a) if a > 0 else "0" for a in grid], rotation=90)
    step = max(1, len(matrix.index) // 8)
    ax.set_yticks(range(0, len(matrix.index), step), [str(v) for v in matrix.index[::step]])
    ax.set_xlabel("$\\alpha$ (× mean $|h_\\ell|$)")
    ax.set_title(f"{labels.get(spec, spec)}\n{group}")
    if ax is axes[0][0]:
        ax.set_ylabel(f"layer $\\ell$ ({heatmap_kind} after block $\\ell$)")
if image is not None:
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="retention (Biderman)")
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Fragility profiles: state distance per layer and KL per step, memorized vs controls

# %%
layer_mean = (layer_profiles.groupby(["spec", "action", "group", "layer"], sort=False)["rel_distance"].mean()
              .reset_index())
step_mean = step_profiles.groupby(["spec", "action", "group", "step"], sort=False)["kl"].mean().reset_index()
summary_rows = []
for (spec, number, group), part in layer_profiles.groupby(["spec", "action", "group"], sort=False):
    last = part[part["layer"] == part["layer"].max()]["rel_distance"].mean()
    steps = step_profiles[(step_profiles["spec"] == spec) & (step_profiles["action"] == number)
                          & (step_profiles["group"] == group)]
    summary_rows.append({"spec": spec, "action": action_label(profile_specs[(spec, number)]), "number": number,
                         "group": group, "n": part["id"].nunique(), "final_layer_distance": last,
                         "mean_kl": steps["kl"].mean(), "steps_changed": 1 - steps["same"].mean()})
profile_summary = pd.DataFrame(summary_rows)
profile_summary.drop(columns="number").round(3)

# %%
fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 2.0 * len(models) + 0.4), squeeze=False,
                         constrained_layout=True)
STYLE = {"memorized": "-", "control": "--"}
for row, spec in enumerate(models):
    ax_l, ax_s = axes[row]
    for number in range(len(profile_actions)):
        colour = f"C{number}"
        for group, ls in STYLE.items():
            lp = layer_mean[(layer_mean["spec"] == spec) & (layer_mean["action"] == number)
                            & (layer_mean["group"] == group)]
            sp = step_mean[(step_mean["spec"] == spec) & (step_mean["action"] == number)
                           & (step_mean["group"] == group)]
            if lp.empty:
                continue
            ax_l.plot(lp["layer"], lp["rel_distance"], color=colour, ls=ls, lw=1.0, marker=".", ms=3)
            ax_s.plot(sp["step"], sp["kl"].clip(lower=1e-6), color=colour, ls=ls, lw=1.0, marker=".", ms=3)
    ax_l.legend(handles=[matplotlib.lines.Line2D([], [], color=f"C{i}", lw=1.0,
                                                 label=action_label(profile_specs[(spec, i)]))
                         for i in range(len(profile_actions))], loc="upper left", frameon=False)
    ax_l.set_ylabel(f"{labels.get(spec, spec)}\n$|h-\\tilde h|/|h|$ (continuation)")
    ax_s.set_ylabel("KL($p_{clean}\\,\\|\\,p_{perturbed}$)")
    ax_s.set_yscale("log")
    for ax in (ax_l, ax_s):
        ax.grid(alpha=0.3, lw=0.4)
    if row == len(models) - 1:
        ax_l.set_xlabel("layer")
        ax_s.set_xlabel("continuation step")
handles = [matplotlib.lines.Line2D([], [], color="0.3", ls=ls, lw=1.0, label=group) for group, ls in STYLE.items()]
fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
report.save_figure(fig, out, "fig_fragility")
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def fmt(x: float, digits: int = 2) -> str:
    return "--" if not np.isfinite(x) else f"{x:.{digits}f}"


def small(x: float) -> str:
    return "--" if not np.isfinite(x) else f"{x:.2g}" if x < 0.1 else f"{x:.2f}"


numbers = {"LayersKind": report.latex_escape(heatmap_kind), "LayersK": k, "LayersM": m}
fragile_votes, disagreements = [], []
for spec in models:
    key = model_key(spec)
    fits_mem = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == "memorized")]
    defined = fits_mem.dropna(subset=["alpha_star"])
    numbers[f"{key}LayersN"] = int(sweeps.loc[sweeps["spec"] == spec, "n_layers"].iloc[0])
    numbers[f"{key}LayersAlphas"] = ", ".join(format_alpha(a) for a in model_alphas.get(spec, alphas) if a > 0)
    numbers[f"{key}LayersShown"] = int(sweeps.loc[sweeps["spec"] == spec, "layer"].nunique())
    numbers[f"{key}LayersNMemorized"] = int((selection[selection["spec"] == spec]["group"] == "memorized").sum())
    numbers[f"{key}LayersNControls"] = int((selection[selection["spec"] == spec]["group"] == "control").sum())
    for name in ("MostSensitive", "MostSensitiveAlpha", "LeastSensitive", "LeastSensitiveAlpha"):
        numbers[f"{key}Layers{name}"] = "--"  # defined even when no layer crosses
    if len(defined):
        most, least = defined.loc[defined["alpha_star"].idxmin()], defined.loc[defined["alpha_star"].idxmax()]
        numbers[f"{key}LayersMostSensitive"] = int(most["layer"])
        numbers[f"{key}LayersMostSensitiveAlpha"] = small(most["alpha_star"])
        numbers[f"{key}LayersLeastSensitive"] = int(least["layer"])
        numbers[f"{key}LayersLeastSensitiveAlpha"] = small(least["alpha_star"])
    numbers[f"{key}LayersNoCrossing"] = int(fits_mem["alpha_star"].isna().sum())
    for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
        part = heat[(heat["spec"] == spec) & (heat["group"] == group) & (heat["alpha"] > 0)]
        numbers[f"{key}LayersMeanRetention{gkey}"] = fmt(part["retention"].mean()) if len(part) else "--"
        med = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == group)]["alpha_star"].median()
        numbers[f"{key}LayersMedianAlphaStar{gkey}"] = small(med) if np.isfinite(med) else "--"
    for number in range(len(profile_actions)):
        resolved = profile_specs[(spec, number)]
        akey = macro_key(resolved["kind"])
        rows = profile_summary[(profile_summary["spec"] == spec)
                               & (profile_summary["number"] == number)].set_index("group")
        for name in ("Dist{}Mem", "Dist{}Ctrl", "KL{}Mem", "KL{}Ctrl", "Changed{}Mem", "Changed{}Ctrl", "Fragility{}",
                     "KLLess{}", "DistLess{}", "ChangedLess{}", "ProfileAlpha{}"):
            numbers[key + name.format(akey)] = "--"  # defined even without both groups
        if not set(GROUPS) <= set(rows.index):
            continue
        mem, ctrl = rows.loc["memorized"], rows.loc["control"]
        numbers[f"{key}ProfileAlpha{akey}"] = f"{resolved['alpha']:g}"
        if resolved["layer"] is not None:
            numbers[f"{key}ProfileLayer{akey}"] = int(resolved["layer"])
        numbers[f"{key}Dist{akey}Mem"] = fmt(mem["final_layer_distance"])
        numbers[f"{key}Dist{akey}Ctrl"] = fmt(ctrl["final_layer_distance"])
        numbers[f"{key}KL{akey}Mem"] = small(mem["mean_kl"])
        numbers[f"{key}KL{akey}Ctrl"] = small(ctrl["mean_kl"])
        numbers[f"{key}Changed{akey}Mem"] = f"{100 * mem['steps_changed']:.0f}"
        numbers[f"{key}Changed{akey}Ctrl"] = f"{100 * ctrl['steps_changed']:.0f}"
        kl_less = mem["mean_kl"] < ctrl["mean_kl"]
        dist_less = mem["final_layer_distance"] < ctrl["final_layer_distance"]
        verdict = ("less fragile" if kl_less and dist_less else "more fragile" if not kl_less and not dist_less
                   else "mixed")
        numbers[f"{key}Fragility{akey}"] = {"less fragile": "less fragile", "more fragile": "more fragile",
                                            "mixed": "undecided (distance and KL disagree)"}[verdict]
        numbers[f"{key}KLLess{akey}"] = "smaller" if kl_less else "larger"
        numbers[f"{key}DistLess{akey}"] = "smaller" if dist_less else "larger"
        changed_less = mem["steps_changed"] < ctrl["steps_changed"]
        numbers[f"{key}ChangedLess{akey}"] = "fewer" if changed_less else "more"
        fragile_votes.append(verdict)
        disagreements.append(changed_less and verdict == "more fragile")
numbers["ProfileNComparisons"] = len(fragile_votes)
numbers["ProfileNLessFragile"] = sum(v == "less fragile" for v in fragile_votes)
numbers["ProfileNMoreFragile"] = sum(v == "more fragile" for v in fragile_votes)
numbers["ProfileNDisagree"] = sum(disagreements)  # fewer greedy changes, yet larger distance and KL
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
