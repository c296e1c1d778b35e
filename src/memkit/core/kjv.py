"""The King James Bible as Debian ships it (package `bible-kjv`), read offline by its `bible` reader.

    raw = bible_dump()                        # a heading per chapter, a line per verse
    for title, verses in chapter_verses(raw): ...

Two parts of memkit read it: the organisms' training corpus (normalised, checksummed) and
the memorization census (chapters as candidate texts). Both go through these two functions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ..errors import MemkitError

APT_PACKAGE = "bible-kjv"  # provides /usr/bin/bible and pulls in bible-kjv-text (the data)
BIBLE_COMMAND = ("bible", "-l2000", "Gen1:1-Rev22:21")  # whole text, no line wrapping
VERSE = re.compile(r"^\s+(\d+) (.*)$")


def bible_dump(command: tuple[str, ...] = BIBLE_COMMAND) -> str:
    """The raw text printed by Debian's `bible` reader (one line per verse, chapter headings)."""
    if shutil.which(command[0]) is None:
        raise MemkitError(f"the KJV text needs the Debian package {APT_PACKAGE} (`make setup`, or "
                          f"`sudo apt-get install {APT_PACKAGE}`): command {command[0]!r} not found")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "COLUMNS": "2000"}
    done = subprocess.run(list(command), capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise MemkitError(f"`{' '.join(command)}` failed (exit {done.returncode}): "
                          f"{done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout.decode("utf-8")


def chapter_verses(raw: str) -> list[tuple[str, list[str]]]:
    """(chapter title, verse texts) for every chapter heading of the `bible` output, in order."""
    chapters: list[tuple[str, list[str]]] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        verse = VERSE.match(line)
        if verse is None:
            chapters.append((line.strip(), []))
        elif not chapters:
            raise MemkitError(f"bible output line {lineno}: verse before any chapter heading")
        else:
            chapters[-1][1].append(verse.group(2))
    return chapters
