"""memkit: measure verbatim memorization in causal language models, white-box and reproducibly.

    import memkit
    lm = memkit.load_model("gemma-3-270m")
    samples = memkit.make_samples(lm, [{"id": "preamble", "text": "We the People ..."}], k=32, m=64)
    df = memkit.extract(lm, samples)   # one row per sample: exact_match, token_match, ...
"""

from .decode import DecodeResult, greedy_decode
from .errors import MemkitError
from .extract import cached_extract, extract, run_extraction
from .metrics import score_continuation
from .models import LoadedModel, list_models, load_model
from .samples import Sample, make_samples, read_jsonl

__all__ = [
    "DecodeResult", "LoadedModel", "cached_extract", "MemkitError", "Sample", "extract", "greedy_decode", "list_models",
    "load_model", "make_samples", "read_jsonl", "run_extraction", "score_continuation",
]
__version__ = "0.1.0"
