"""The core of memkit: load a model, tokenise samples, decode greedily, score, extract.

- `models`    load causal LMs offline (embedded, folders, GGUF, hub ids; `SPEC_RESOLVERS`)
- `samples`   records -> token samples (prefix, suffix, prompt in raw or chat mode)
- `decode`    exact batched greedy decoding, drafted by the true suffix
- `metrics`   memorization metrics of one continuation
- `extract`   runs, shards, resume, caches
- `arch`      every architecture fact (module paths, norms, soft-capping), as data
- `hooks`     the one door for torch hooks (`attach`, `residual_edit`, `record_residuals`)
- `batching`  right / left padding of token rows
- `text`      generic text and fixed-length token windows

Everything else (dynamics, organisms, mechanisms, mia, the paper, the CLI) builds on these
modules; they import nothing from the rest of memkit except `memkit.errors` and
`memkit.paths`.
"""
