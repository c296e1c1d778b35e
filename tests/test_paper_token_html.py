"""The explore notebook's coloured continuation (memkit.paper.token_html) on a hand-made token table."""

import pandas as pd

from memkit.paper.token_html import token_html


def test_token_html_colours_matches_and_escapes():
    table = pd.DataFrame({"generated": [" a", "<b>"], "p_generated": [0.5, 0.12345], "match": [True, False]})
    assert token_html(table) == (
        "<p style='font-family:monospace'>"
        '<span style="background:#c8f7c5" title="p=0.500"> a</span>'
        '<span style="background:#f7c5c5" title="p=0.123">&lt;b&gt;</span></p>')


def test_token_html_without_reference_is_all_red():
    table = pd.DataFrame({"generated": ["x"], "p_generated": [1.0]})
    assert token_html(table) == ("<p style='font-family:monospace'>"
                                 '<span style="background:#f7c5c5" title="p=1.000">x</span></p>')
