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
import signal
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


class _Sigint:
    """Remembers that Ctrl-C arrived: a library may turn the KeyboardInterrupt into another error
    (transformers reports a SIGINT inside its lazy imports as "Could not import module ...")."""

    seen = False

    @classmethod
    def handler(cls, signum, frame) -> None:
        cls.seen = True
        raise KeyboardInterrupt

    @classmethod
    def install(cls):
        """Replace Python's default SIGINT handler (only that one: an ignored SIGINT stays ignored).

        Returns the handler to restore afterwards, or None when nothing was replaced.
        """
        cls.seen = False
        try:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                return signal.signal(signal.SIGINT, cls.handler)
        except ValueError:  # not the main thread (e.g. main() called from a worker): keep the default
            pass
        return None


def _interrupted() -> int:
    print("memkit: interrupted; rerun the same command to resume", file=sys.stderr)
    return 130


def _report(exc: Exception, args) -> int:
    """One line and exit code 2 (or 0) for the errors the user can act on; anything else is a bug: re-raised."""
    if isinstance(exc, StdoutClosed):
        _silence_stdout()
        return 0
    if isinstance(exc, StdoutError):
        _silence_stdout()
        if getattr(args, "writes_file", False):  # the output file is complete; only the summary was lost
            print(f"memkit: note: {args.out} was written; {exc}", file=sys.stderr)
            return 0
        return _error(str(exc))
    if isinstance(exc, MemkitError):
        return _error(str(exc))
    if isinstance(exc, OSError):  # disk full, read-only file system, permissions: the environment, not a bug
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _error(f"{exc.strerror or exc}{where}")
    raise exc


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    previous = _Sigint.install()
    args = None
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if _Sigint.seen:  # an error a Ctrl-C caused (e.g. inside an import) is the interruption, not a failure
            return _interrupted()
        return _report(exc, args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
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
