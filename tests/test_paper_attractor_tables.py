"""Table 1 and the appendix table (memkit.paper.attractor_tables) on a hand-made verdict frame."""

import pandas as pd

from memkit.paper import attractor_tables as at

IDS = ["counting", "genesis_1", "control_shuffled_pi_digits", "harry_potter"]
CATEGORIES = ["sequence", "religious", "control", "literature_copyrighted"]
KINDS = ["sequence", "text", "control", "text"]


def _runs() -> pd.DataFrame:
    """Two combinations (model a raw, model b chat_verbatim) on four records; harry_potter runs with k=12."""
    rows = []
    combos = (("a", "raw", [True, True, False, False]), ("b", "chat_verbatim", [True, False, False, False]))
    for spec, mode, hit in combos:
        for i, (rid, category, kind, mem) in enumerate(zip(IDS, CATEGORIES, KINDS, hit)):
            rows.append({"spec": spec, "mode": mode, "id": rid, "meta_category": category, "kind": kind,
                         "k": 12 if rid == "harry_potter" else 16, "m": 16, "prefix_match_len": 16 if mem else i,
                         "token_match": 1.0 if mem else 0.25, "seed_score": 1.0 if mem else 0.1234,
                         "lev_similarity": 1.0 if mem else 0.5, "char_lev_similarity": 0.75, "zlib_ratio": 0.5,
                         "levenshtein": 0 if mem else 8, "min_top2_gap": 0.00123, "mem_exact": mem, "mem_biderman": mem,
                         "mem_near_verbatim": mem, "mem_seed": mem, "contains_suffix": mem})
    return pd.DataFrame(rows)


LIT = pd.DataFrame({"attractor_id": ["genesis_1", "counting", "genesis_1"], "model": ["Llama", "Llama", "Mistral"],
                    "seed_score": [0.9, 0.5, 0.8]})
LABELS = {"a": "Model_A", "b": "Model B"}


def test_rows_cells_and_notes():
    runs = _runs()
    assert at.combinations(runs) == [("a", "raw"), ("b", "chat_verbatim")]
    assert at.combo_label("a", "raw", LABELS) == "Model_A (raw)" and at.combo_label("z", "raw", LABELS) == "z (raw)"
    rows = at.table_rows(runs)
    assert rows["id"].tolist() == ["genesis_1", "harry_potter", "counting", "control_shuffled_pi_digits"]
    assert (rows["spec"] == "a").all()
    assert at.attractor_cells(rows, k=16, m=16) == ["genesis\\_1", "harry\\_potter$^\\dagger$", "counting",
                                                    "shuffled\\_pi\\_digits"]
    assert at.kind_cells(rows["kind"]) == ["texts (2)", "", "sequences (1)", "controls (1)"]
    assert at.short_note(rows, k=16, m=16) == "$^\\dagger$Too short for $k+m$ tokens: run with $k=12$, $m=16$."
    assert at.short_note(rows[rows["id"] != "harry_potter"], k=16, m=16) == ""


def test_attractor_table():
    table, caption, column_format = at.attractor_table(_runs(), LIT, labels=LABELS, k=16, m=16, biderman_m=32,
                                                       source="tab_x")
    assert column_format == "lll" + "rrrl" * 2 + "rr"
    assert table.shape == (4, 3 + 8 + 2)
    assert table[("", "Cat.")].tolist() == ["relig", "lit\\copyright{}", "seq", "ctrl"]
    a, b = "Model\\_A (raw)", "Model B (chat\\_verbatim)"
    assert table[(a, "Rules")].tolist() == ["EBNSC", "--", "EBNSC", "--"]
    assert table[(b, "Rules")].tolist() == ["--", "--", "EBNSC", "--"]
    assert table[(a, "P")].tolist() == [16, 3, 16, 2] and table[(b, "TM")].tolist()[:1] == ["0.25"]
    assert table[(b, "Seed")].tolist() == ["0.12", "0.12", "1.00", "0.12"]
    assert table[("Literature (quoted)", "Llama")].tolist() == ["0.900", "", "0.500", ""]
    assert table[("Literature (quoted)", "Mistral")].tolist() == ["0.800", "", "", ""]
    assert "$k=16$" in caption and "first 16 tokens" in caption and "run with $k=12$, $m=16$." in caption
    assert caption.endswith("Made by \\texttt{notebooks/tab\\_x.py}.")


def test_full_table_fits_and_escapes():
    full, caption, column_format = at.full_table(_runs(), labels=LABELS, short_labels={"a": "A"}, k=16, m=16,
                                                 source="tab_x")
    assert column_format == "lllrrrrrrrl" and len(column_format) == full.shape[1]
    assert list(full.columns) == ["Attractor", "Kind", "Run", "P", "TM", "Lev", "Char", "Seed", "zlib", "Gap", "Rules"]
    # per combination: texts, sequences, controls; the mode is escaped (chat_verbatim broke the LaTeX)
    assert full["Run"].tolist() == ["A raw"] * 4 + ["Model B chat\\_verbatim"] * 4
    assert full["Kind"].tolist() == ["text", "text", "seq", "ctrl"] * 2
    assert full["Attractor"].tolist()[:2] == ["genesis\\_1", "harry\\_potter$^\\dagger$"]
    first = full.iloc[0]
    assert (first["P"], first["TM"], first["Lev"], first["Char"], first["Seed"], first["Gap"]) == (
        16, "1.000", "1.000", "0.750", "1.000", "1.2e-03")
    assert full.iloc[1]["Seed"] == "0.123" and full.iloc[1]["Rules"] == "--"
    assert "prefix $k=16$, continuation $m=16$" in caption and "run with $k=12$, $m=16$." in caption
