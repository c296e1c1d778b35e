"""The core of memkit: load a model, tokenise samples, decode greedily, score, extract.

Everything else (dynamics, organisms, mechanisms, the paper, the CLI) builds on these
modules; they import nothing from the rest of memkit except `memkit.errors` and
`memkit.paths`.
"""
