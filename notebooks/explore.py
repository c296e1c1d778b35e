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
# # Explore: does a model recite this text?
#
# Type a prompt (and, optionally, the text you expect next), pick a model and a prompting
# mode, and see the greedy continuation beside the reference: matching tokens are green,
# the rest red, with the probability the model gave each token. Models: `memkit models`.
#
# The public API at work: `memkit.load_model` loads a model, `memkit.make_samples` tokenises the
# prompt (raw, or through the chat template) and the reference, `memkit.greedy_decode` continues
# it; `memkit.paper.tokens.token_table` scores every generated token and
# `memkit.paper.token_html.token_html` colours them.

# %% tags=["parameters"]
model = "smollm2-135m-instruct"  # or "gemma-3-270m", a folder, a .gguf file
mode = "raw"  # "raw" (prefix as-is) or "chat" (as a user message through the chat template)
prompt = "We the People of the United States, in Order to form a more perfect Union,"
reference = " establish Justice, insure domestic Tranquility, provide for the common defence,"
new_tokens = 12

# %%
import warnings

import transformers
from IPython.display import HTML, display

import memkit
from memkit.core.extract import pad_token_id
from memkit.paper.token_html import token_html
from memkit.paper.tokens import token_table

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
lm = memkit.load_model(model)
# without a reference, a placeholder suffix only gets the prompt tokenised (it is never compared)
record = {"id": "prompt", "prefix": prompt, "suffix": reference or " x" * new_tokens}
sample = memkit.make_samples(lm, [record], k=1, m=new_tokens, mode=mode)[0]

# %%
prompt_ids, reference_ids = sample.prompt_ids, (sample.suffix_ids if reference else None)
pad = pad_token_id(lm.tokenizer)
generated = memkit.greedy_decode(lm.model, [prompt_ids], new_tokens, pad).generated_ids[0]
table = token_table(lm, prompt_ids, generated, reference_ids)
print("continuation:", repr(lm.tokenizer.decode(generated)))
table.round(3)

# %%
if reference_ids is not None:
    exact = bool(table["match"].all())
    print(f"{int(table['match'].sum())} of {len(table)} tokens match the reference; exact match: {exact}")
display(HTML(token_html(table)))
