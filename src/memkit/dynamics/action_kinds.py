"""The vocabulary of actions (kinds and their families), importable without torch.

The command line builds its `--action` choices from here at start-up; `memkit.dynamics.actions`
implements the kinds (see its docstring for what alpha means for each).
"""

TOKEN_KINDS = ("insert_rare", "substitute_rare", "insert_shock", "delete", "typo", "truncate")
EMBEDDING_KINDS = ("embed_random", "embed_noise", "embed_direction")
LOGIT_KINDS = ("logit_rare_bias", "logit_tail")
SHOCK_KINDS = ("force_token",)
KINDS = TOKEN_KINDS + EMBEDDING_KINDS + LOGIT_KINDS + SHOCK_KINDS
FAMILIES = {**{k: "token" for k in TOKEN_KINDS}, **{k: "embedding" for k in EMBEDDING_KINDS},
            **{k: "logit" for k in LOGIT_KINDS}, **{k: "shock" for k in SHOCK_KINDS}}
#: Kinds that need a Python object (a direction vector) and so are offered by the API only.
API_ONLY_KINDS = ("embed_direction",)
