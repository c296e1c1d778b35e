"""Coloured HTML of a continuation's tokens (notebook `explore`), from a `paper.tokens.token_table` frame.

    display(HTML(token_html(token_table(lm, prompt_ids, generated_ids, reference_ids))))
"""

from __future__ import annotations

import html

import pandas as pd

MATCH_COLOUR, MISMATCH_COLOUR = "#c8f7c5", "#f7c5c5"


def token_html(table: pd.DataFrame) -> str:
    """Generated tokens as monospace HTML: green where they equal the reference, red elsewhere, p on hover."""
    spans = []
    for row in table.itertuples():
        colour = MATCH_COLOUR if getattr(row, "match", False) else MISMATCH_COLOUR
        title = f"p={row.p_generated:.3f}"
        spans.append(f'<span style="background:{colour}" title="{title}">{html.escape(row.generated)}</span>')
    return "<p style='font-family:monospace'>" + "".join(spans) + "</p>"
