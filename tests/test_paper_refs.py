"""The paper's sources without a LaTeX run: citation keys against refs.bib, balanced braces, section inputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parent.parent / "paper"
TEX = sorted(PAPER.glob("*.tex"))
CITE = re.compile(r"\\(?:no)?cite[a-zA-Z]*\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")
ENTRY = re.compile(r"^@([a-zA-Z]+)\s*\{\s*([^,\s]+)\s*,", re.MULTILINE)


def _uncommented(text: str) -> str:
    """The text without LaTeX comments (a % not escaped as \\%)."""
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())


def _bib_keys() -> list[str]:
    return [key for kind, key in ENTRY.findall((PAPER / "refs.bib").read_text()) if kind.lower() != "comment"]


def _cited() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for path in TEX:
        for group in CITE.findall(_uncommented(path.read_text())):
            for key in filter(None, (k.strip() for k in group.split(","))):
                cited.setdefault(key, set()).add(path.name)
    return cited


def test_every_cited_key_is_in_refs_bib_and_every_entry_is_cited():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), "duplicate keys in refs.bib"
    cited = _cited()
    missing = {key: sorted(files) for key, files in cited.items() if key not in keys}
    assert not missing, f"cited but not in refs.bib: {missing}"
    assert not set(keys) - set(cited), f"in refs.bib but never cited: {sorted(set(keys) - set(cited))}"


@pytest.mark.parametrize("path", [*TEX, PAPER / "refs.bib"], ids=lambda p: p.name)
def test_braces_balance(path):
    text = _uncommented(path.read_text()) if path.suffix == ".tex" else path.read_text()
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for char in re.sub(r"\\[{}]", "", line):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, f"{path.name}:{number}: closing brace without an opening one"
    assert depth == 0, f"{path.name}: {depth} unclosed brace(s)"


def test_sections_that_main_inputs_exist():
    inputs = re.findall(r"\\input\{([^}.]+)\}", _uncommented((PAPER / "main.tex").read_text()))
    assert inputs and all((PAPER / f"{name}.tex").exists() for name in inputs), inputs  # ../figures/*.tex are built
