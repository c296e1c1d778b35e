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
# # Table — latent memorization: do weight perturbations recover canaries that are not extractable?
#
# Duan et al. (2025) perturbed Pythia-1B with gaussian weight noise (σ = 2·10⁻³, N = 200 draws) and
# found sequences that greedy decoding does not reproduce but some perturbed model does ("latent
# memories"). Here: for every organism size, the inserted canaries that are *not* exactly extractable
# at the final checkpoint, and the never-inserted controls (level 0), are decoded under N noise draws
# per σ (absolute σ, every weight tensor; the weights are restored bit for bit after each draw), and
# each sample keeps its best token-level Levenshtein similarity over the draws. A best-of-N statistic
# rises under pure noise, so only *hidden* canaries count (clean similarity no higher than every
# control's: unmemorized-looking without noise), and one is *recovered* only when its best similarity
# beats every control of the same size and σ (`memkit.scaling.latent_vs_controls`); a one-sided
# Mann-Whitney test asks whether inserted canaries gain more from the noise (best − clean) than the
# controls. σ is swept because these models are much smaller than Pythia-1B.
#
# Outputs (into `out_dir`): `tab_latent.tex`, `fig_latent.pdf/.png`, `numbers_tab_latent.tex`.
# Defaults are smoke settings; paper settings: `params/tab_latent.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
sizes = None  # None: every size of the profile
k = 32
m = 32
sigmas = [0.001, 0.01]  # absolute noise std per weight
n_draws = 4  # noise draws per sigma (Duan: 200)
min_level = 16  # inserted canaries with at least this many copies (and not extractable) are tested
seed = 0
batch_size = 64
progress = False
out_dir = "build/smoke/tab_latent"

# %%
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
from memkit.organisms import zoo
from memkit.organisms.latent import latent_memorization, latent_vs_controls, mark_latent
from memkit.paper import report
from memkit.paper.report import fit_float, macro_key
from memkit.paths import PROJECT_ROOT

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "tab_latent"
zoo.build_zoo(profile, progress=progress)
sizes = sizes or list(zoo.get_profile(profile).sizes)
prefix = "" if profile == zoo.DEFAULT_PROFILE else f"{profile}/"

# %% [markdown]
# ## Best-of-N similarity under weight noise, per size and σ

# %%
samples = [s for s in zoo.zoo_samples(profile, k=k, m=m)
           if s.meta["window"] == "all" and (s.meta["level"] == 0 or s.meta["level"] >= min_level)]
frames = []
for size in sizes:
    lm = memkit.load_model(f"zoo:{prefix}{size}@final", device="cpu")
    latent = latent_memorization(lm, samples, sigmas=sigmas, n_draws=n_draws, seed=seed, batch_size=batch_size,
                                 progress=progress)
    frames.append(latent.assign(size=size, params=int(lm.meta["non_embedding_params"])))
latent = pd.concat(frames, ignore_index=True)
latent.groupby(["size", "sigma", latent["meta_level"] > 0], sort=False)[
    ["clean_similarity", "mean_similarity", "best_similarity", "best_exact"]].mean().round(3)

# %% [markdown]
# ## Inserted (not extractable) vs never-seen controls

# %%
tested = latent[(latent["meta_level"] == 0) | ~latent["clean_exact"]]
result = pd.concat([latent_vs_controls(group, by=("sigma",)).assign(size=size, params=int(group["params"].iloc[0]))
                    for size, group in tested.groupby("size", sort=False)], ignore_index=True)
result[["size", "sigma", "n_inserted", "n_hidden", "n_controls", "control_clean_max", "control_threshold", "recovered",
        "recovered_exact", "inserted_gain", "control_gain", "mannwhitney_p"]].round(4)

# %% [markdown]
# ## Figure: best-of-N similarity, inserted vs controls

# %%
def human(n: int) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, len(sizes), figsize=(7.0, 2.3), constrained_layout=True, sharey=True, squeeze=False)
for ax, size in zip(axes[0], sizes):
    sub = tested[tested["size"] == size]
    for offset, (is_inserted, color, label) in enumerate(((False, "0.5", "controls"), (True, "C3", "inserted"))):
        group = sub[(sub["meta_level"] > 0) == is_inserted]
        x = np.log10(group["sigma"]) + (offset - 0.5) * 0.08
        ax.scatter(x, group["best_similarity"], s=6, color=color, alpha=0.6, label=label, lw=0)
        means = group.groupby("sigma")["best_similarity"].mean()
        ax.plot(np.log10(means.index), means.values, "-", color=color, lw=1)
    clean = sub.drop_duplicates("id")
    ax.axhline(clean[clean["meta_level"] > 0]["clean_similarity"].mean(), color="C3", ls=":", lw=0.8)
    ax.set(title=f"{human(int(sub['params'].iloc[0]))}", xlabel="log$_{10}$ σ")
    ax.grid(alpha=0.3, lw=0.5)
axes[0][0].set_ylabel(f"best Levenshtein similarity over {n_draws} draws")
axes[0][0].legend(frameon=False)
report.save_figure(fig, out, "fig_latent")
plt.close(fig)

# %% [markdown]
# ## Table and numbers quoted in the paper

# %%
table = result.assign(
    model=result["size"].map(lambda s: f"zoo:{s}"), sigma=result["sigma"].map(lambda v: f"{v:g}"),
    tested=[f"{a} / {h} / {b}" for a, h, b in zip(result["n_inserted"], result["n_hidden"], result["n_controls"])],
    threshold=result["control_threshold"].map(lambda v: f"{v:.3f}"),
    gains=[f"{a:+.3f} / {b:+.3f}" for a, b in zip(result["inserted_gain"], result["control_gain"])],
    p=result["mannwhitney_p"].map(lambda v: f"{v:.2g}"),
)[["model", "sigma", "tested", "threshold", "recovered", "recovered_exact", "gains", "p"]]
table.columns = ["model", "$\\sigma$", "inserted / hidden / controls", "control max", "recovered", "exact",
                 "gain ins. / ctrl", "$p$ (MW)"]
table_path = report.write_table(table, out / f"{NAME}.tex", source=NAME, escape=False, column_format="lrrrrrrr",
                                caption=f"Latent memorization in the organisms: best token Levenshtein similarity over "
                                        f"{n_draws} gaussian weight perturbations per $\\sigma$ for inserted canaries "
                                        f"($\\geq${min_level} copies) not extractable at the final checkpoint vs never-inserted "
                                        f"controls. Hidden: clean similarity no higher than every control's; recovered: hidden "
                                        f"and best similarity above every control's best; $p$: one-sided Mann-Whitney test that "
                                        f"inserted canaries gain more (best $-$ clean) than controls.", label="tab:latent")
fit_float(table_path, font=r"\small", width=r"\linewidth")
marked = pd.concat([mark_latent(group) for _, group in tested.groupby("size", sort=False)])
marked["recovered_exact"] = marked["recovered"] & marked["best_exact"].astype(bool)
recovered_ids = marked.groupby(["size", "id"])[["recovered", "recovered_exact"]].any().reset_index()  # any sigma
numbers = {"LatentDraws": n_draws, "LatentMinLevel": min_level, "LatentNSigmas": len(sigmas),
           "LatentSigmaMin": f"{min(sigmas):g}", "LatentSigmaMax": f"{max(sigmas):g}",
           "LatentRecoveredCanaries": int(recovered_ids["recovered"].sum()),
           "LatentRecoveredExactCanaries": int(recovered_ids["recovered_exact"].sum()),
           "LatentControlsEverExact": int(latent[latent["meta_level"] == 0]["best_exact"].sum()),
           "LatentTestedTotal": int(result.drop_duplicates("size")["n_inserted"].sum()),
           "LatentHiddenTotal": int(result.drop_duplicates("size")["n_hidden"].sum()),
           "LatentSignificant": int((result["mannwhitney_p"] < 0.05).sum()), "LatentNTests": len(result)}
for size, group in result.groupby("size", sort=False):
    best = group.sort_values(["recovered", "sigma"], ascending=[False, True], kind="stable").iloc[0]
    numbers["LatentRecoveredMax" + macro_key(size)] = int(best["recovered"])
    numbers["LatentRecoveredMaxSigma" + macro_key(size)] = f"{best['sigma']:g}"
    numbers["LatentTested" + macro_key(size)] = int(best["n_inserted"])
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
