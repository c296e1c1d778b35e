"""Command line: `memkit models|extract|perturb|lens|ablate|edit|mia|zoo|census` (see `memkit <command> --help`).

One module per subcommand (`register(sub)` adds its parser, `run(args)` does the work);
`args.py` holds what they share. The promise kept here for every command:

- bad input, a usage error or an I/O failure (disk full, read-only folder) is one line on
  stderr, `memkit: error: ...`, and exit code 2 -- never a traceback;
- Ctrl-C is one line and exit code 130 (finished batches are kept; rerun to resume);
- a reader that closes the pipe (`memkit models | head -1`) is not an error (exit 0);
- outputs are written atomically, so a failed run leaves nothing half-written.

Only the standard library is imported at start-up; torch and the models load inside `run`.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import MemkitError
from . import ablate, census, edit, extract, lens, mia, models, perturb, zoo
from .args import StdoutClosed, StdoutError

COMMANDS = (models, extract, perturb, lens, ablate, edit, mia, zoo, census)


class UsageError(MemkitError):
    """A command line argparse could not accept."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help) instead of usage + error."""

    def error(self, message: str):  # noqa: D102 (argparse API)
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="memkit", description="Measure verbatim memorization in causal LMs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def _error(message: str) -> int:
    print(f"memkit: error: {message}".splitlines()[0], file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = None
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except KeyboardInterrupt:
        print("memkit: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except StdoutClosed:
        _silence_stdout()
        return 0
    except StdoutError as exc:
        _silence_stdout()
        if getattr(args, "writes_file", False):  # the output file is complete; only the summary was lost
            print(f"memkit: note: {args.out} was written; {exc}", file=sys.stderr)
            return 0
        return _error(str(exc))
    except MemkitError as exc:
        return _error(str(exc))
    except OSError as exc:  # disk full, read-only file system, permissions: the environment, not a bug
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _error(f"{exc.strerror or exc}{where}")
    return 0


def console() -> None:
    """The `memkit` executable: `main`, then exit with its code.

    After Ctrl-C the process ends with `os._exit(130)`: a SIGINT that landed inside an
    import can leave the interpreter set to re-raise it at shutdown (exit by signal, after
    our one line), so the normal shutdown is skipped once the streams are flushed.
    """
    code = main()
    if code == 130:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    console()
