"""One exception type for every user-facing problem (bad input, missing model, ...).

The CLI turns a `MemkitError` into a single line on stderr and exit code 2, so messages
must name the file, line, field or id that is wrong.
"""


class MemkitError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""
