"""`python -m memkit.cli ...` is the `memkit` command."""

from . import console

console()
