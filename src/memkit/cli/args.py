"""What every subcommand shares: argument types, model/sample options, output guards, stdout.

Argument types raise `argparse.ArgumentTypeError`, which the parser turns into one line.
The guards run before any model is loaded, so a bad `--out` costs nothing: it must not be
(or point at) an input file, its folder must exist and be writable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from ..core.samples import MODES
from ..errors import MemkitError

#: Prompt modes (memkit.core.samples.MODES; that module is torch-free, so the parser may import it).
PROMPT_MODES = MODES
PROMPT_MODES_HELP = ("raw: prefix as-is (default); chat: prefix as a user message via the chat template; "
                     "chat_verbatim: the same after an instruction to continue the text verbatim")


class StdoutError(MemkitError):
    """Standard output could not be written (full device, closed descriptor)."""


class StdoutClosed(Exception):
    """The reader of standard output went away (`memkit models | head -1`): not an error."""


# -- argument types -------------------------------------------------------------------------------
def _integer(text: str, minimum: int, wanted: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text!r}")
    return value


def layer_list(text: str) -> list[int]:
    """`3,5,7` -> [3, 5, 7]; an empty list is a usage error (it would select nothing)."""
    try:
        layers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer numbers, got {text!r}") from None
    if not layers:
        raise argparse.ArgumentTypeError(f"no layer given in {text!r}")
    return layers


def head_list(text: str) -> list[tuple[int, int]]:
    """`0:1,2:3` -> [(0, 1), (2, 3)]; an empty list is a usage error."""
    try:
        heads = [(int(a), int(b)) for a, b in (item.split(":") for item in text.split(",") if item.strip())]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected heads as LAYER:HEAD,LAYER:HEAD,..., got {text!r}") from None
    if not heads:
        raise argparse.ArgumentTypeError(f"no head given in {text!r}")
    return heads


# -- shared options -------------------------------------------------------------------------------
def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="embedded name (gemma-3-270m, smollm2-135m-instruct), a model folder, a .gguf file, "
                             "zoo:<size>@<step>, or a hub id [hub:]owner/name[@revision] together with --online")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", help="float32 (default; CPU always), bfloat16 or float16 on CUDA")
    parser.add_argument("--online", action="store_true", help="allow downloading a hub model (offline by default)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also load checkpoints that ship only pickle weights (pytorch_model.bin), e.g. Pythia's "
                             "step revisions; default: safetensors only")


def add_io_args(parser: argparse.ArgumentParser, m_default: int = 64) -> None:
    parser.add_argument("--input", required=True, type=Path,
                        help='JSONL, one record per line: {"id","text"} or {"id","prefix","suffix"}')
    parser.add_argument("--out", required=True, type=Path, help="output parquet file (written atomically)")
    parser.add_argument("--prefix-tokens", "-k", type=positive_int, default=32, help="prefix length k (default 32)")
    parser.add_argument("--suffix-tokens", "-m", type=positive_int, default=m_default,
                        help=f"continuation length m (default {m_default})")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="samples per batch (default 16)")


def add_sample_args(parser: argparse.ArgumentParser) -> None:
    add_io_args(parser)
    parser.add_argument("--mode", choices=PROMPT_MODES, default="raw", help=PROMPT_MODES_HELP)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def load(args: argparse.Namespace):
    """The model named by the common model options (progress bars follow --no-progress)."""
    from ..core.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype, online=args.online,
                      progress=not getattr(args, "no_progress", False), allow_pickle=args.allow_pickle)


# -- files ----------------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_writable_dir(folder: Path) -> None:
    """Fail now, not after an hour of compute, if nothing can be written into `folder`."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".memkit-write-test.", dir=folder)
    except OSError as exc:
        raise MemkitError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def guard_output(out: Path, *inputs: Path | None, folder: bool = False) -> None:
    """Check `out` before any work: not an input, its parent exists and is writable.

    `folder=True`: `out` is a model folder that must not exist yet; otherwise `out` is a file
    that must not be a directory (an existing file is replaced atomically at the end).
    """
    for source in inputs:
        if source is not None and _same_file(out, source):
            raise MemkitError(f"--out {out} is the input file {source}; choose another output path")
    parent = out.parent
    if not parent.resolve().is_dir():
        raise MemkitError(f"output directory does not exist: {parent}")
    if folder and (out.exists() or out.is_symlink()):
        raise MemkitError(f"output {out} already exists; give a new folder for the edited model")
    if not folder and out.is_dir():
        raise MemkitError(f"output {out} is a directory; give the path of a .parquet file")
    check_writable_dir(parent)


def read_text_file(path: Path) -> str:
    """A UTF-8 text file, or a MemkitError naming it (missing, not UTF-8, empty)."""
    if not path.is_file():
        raise MemkitError(f"text file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MemkitError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise MemkitError(f"{path}: empty text file")
    return text


# -- standard output ------------------------------------------------------------------------------
def emit(line: str) -> None:
    """Print one line of results; a closed or full stdout becomes StdoutClosed / StdoutError."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise StdoutError("standard output is closed")
    try:
        print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None
    except OSError as exc:
        raise StdoutError(f"cannot write to standard output: {exc.strerror or exc}") from None


# -- large inputs and Ray (memkit extract) -----------------------------------------------------
#: Input formats and token dtypes of `memkit.core.sources` (spelled out here: the CLI starts
#: without importing pandas; tests/test_sources.py checks that the lists agree).
INPUT_FORMATS = ("auto", "jsonl", "tokens-jsonl", "parquet", "memmap", "hf")
TOKEN_DTYPES = ("uint16", "uint32", "int32", "int64")
_RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def ray_address(text: str) -> str:
    """`auto`, `local`, HOST:PORT or ray://HOST:PORT (port 1-65535)."""
    if not _RAY_ADDRESS.match(text) or (text not in ("auto", "local") and not 0 < int(text.rsplit(":", 1)[1]) < 65536):
        raise argparse.ArgumentTypeError(f"bad Ray address {text!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    return text


def set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Replace the help of an option added by a shared helper (e.g. what --input accepts)."""
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def add_source_args(parser: argparse.ArgumentParser) -> None:
    set_help(parser, "input", "records: JSONL ({\"id\",\"text\"}, {\"id\",\"prefix\",\"suffix\"} or "
                              "{\"id\",\"prefix_ids\",\"suffix_ids\"}), parquet, a token memmap (.bin/.npy), "
                              "a Hugging Face dataset folder or .arrow file")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                        help="how to read --input (default: from its name or first bytes)")
    parser.add_argument("--seq-len", type=positive_int, default=None,
                        help="memmap: tokens per sequence (e.g. 2049 for Pythia's Pile); sample i = sequence i")
    parser.add_argument("--indices", type=Path, default=None,
                        help="memmap: file of sequence numbers to extract, one per line (or .npy), in that order")
    parser.add_argument("--dtype-tokens", choices=TOKEN_DTYPES, default=None,
                        help="memmap: token type of a raw .bin file (default uint16)")
    parser.add_argument("--chunk-size", type=positive_int, default=4096,
                        help="samples read, planned into batches and kept in memory at a time (default 4096)")


def add_ray_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", nargs="?", const="local", default=None, type=ray_address, metavar="ADDRESS",
                        help="run on Ray: no ADDRESS starts a local Ray (or joins $RAY_ADDRESS), `auto` joins the "
                             "running cluster, or HOST:PORT / ray://HOST:PORT")
    parser.add_argument("--num-actors", type=positive_int, default=2,
                        help="with --ray: model replicas (actors), one GPU each on CUDA (default 2)")
    parser.add_argument("--threads-per-actor", type=positive_int, default=1,
                        help="with --ray: torch threads (and CPUs requested) per actor (default 1)")
