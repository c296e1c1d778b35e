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
# # Appendix: provenance stamp and extraction benchmark
#
# Writes `provenance.tex` (git commit, Python and package versions, SHA-256 of every model
# file used, thread count) and `tab_bench.tex` (the table of `make bench`) for the paper's
# appendix. Smoke settings run a miniature benchmark so the notebook works on its own. The stamp and
# the table's columns come from `memkit.paper.provenance`, the benchmark from `memkit.paper.bench`.

# %% tags=["parameters"]
out_dir = "build/smoke/appendix_provenance"
models = ["gemma-3-270m", "smollm2-135m-instruct"]
bench_csv = None  # path to `make bench` output; None runs a miniature benchmark here
smoke_bench_model = "smollm2-135m-instruct"

# %%
import pandas as pd

from memkit.paper import nb, report
from memkit.paper.bench import bench_model
from memkit.paper.provenance import bench_table, write_provenance

out = nb.setup(out_dir, threads=None)  # torch's thread count is left alone: the stamp records it

# %% [markdown]
# ## Provenance

# %%
model_rows = write_provenance(out / "provenance.tex", models, source="appendix_provenance")
print("models stamped:", [r["model"] for r in model_rows])

# %% [markdown]
# ## Extraction benchmark
# Times are medians on this machine; the ratios (`x_floor`, `x_generate`) are what transfers.

# %%
if bench_csv is not None:
    bench = pd.read_csv(bench_csv)
else:
    bench = pd.DataFrame(bench_model(smoke_bench_model, n=2, k=8, m=4, batch_size=2, repeats=1, nocache_samples=1))
shown = bench_table(bench)
report.write_table(shown, out / "tab_bench.tex", source="appendix_provenance", float_format="%.2f")
# timings vary from run to run: show only what must not change
print(shown[["model", "workload", "method", "same tokens"]].to_string(index=False))
