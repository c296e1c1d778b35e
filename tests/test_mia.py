"""Membership inference: every score against values computed by hand (a bigram model with known
logits), padding invariance on the tiny GPT-NeoX, and AUC / TPR@FPR / bootstrap conventions."""

from __future__ import annotations

import math
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import memkit
from memkit.core.samples import Sample
from memkit.mechanisms.ablation import suffix_logprobs
from memkit.core.stats import t_interval
from memkit.mia import attack_metrics, attack_table, mia_scores, seed_pooled_metrics, token_stats

from conftest import tiny_corpus

SCORES = ["score_loss", "score_zlib", "score_min_k", "score_min_k_pp"]


class Bigram(torch.nn.Module):
    """A causal LM whose logits at position t are `table[x_t]`: every probability is known exactly."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32), requires_grad=False)

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        return SimpleNamespace(logits=self.table[input_ids])


class Letters:
    """Tokenizer of the bigram model: id i is the i-th letter; id 0 is the pad/special token '_'."""

    pad_token_id = eos_token_id = 0

    def __init__(self, size):
        self.alphabet = "_" + "".join(chr(ord("a") + i) for i in range(size - 1))

    def __len__(self):
        return len(self.alphabet)

    def get_vocab(self):
        return {c: i for i, c in enumerate(self.alphabet)}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.alphabet[i] for i in ids if not (skip_special_tokens and i == 0))


def bigram_lm(table):
    table = np.asarray(table, dtype=np.float32)
    return SimpleNamespace(model=Bigram(table), tokenizer=Letters(len(table)), name="bigram",
                           device=torch.device("cpu"))


def sample(sid, prefix, suffix, lead=(), **meta):
    return Sample(sid, tuple(prefix), tuple(suffix), tuple(lead) + tuple(prefix), "raw", meta)


# -- scores by hand ---------------------------------------------------------------------------------
def test_two_point_distribution_by_hand():
    # every row [ln 3, 0, 0, 0]: p = (1/2, 1/6, 1/6, 1/6); log p takes two values, so mu = -ln(12)/2,
    # sigma = ln(3)/2 and z = +1 for token 0, -1 for the others
    lm = bigram_lm(np.tile([math.log(3), 0, 0, 0], (4, 1)))
    s = sample("s", prefix=(0, 1), suffix=(0, 2))  # scored (all): 1, 0, 2
    (st,) = token_stats(lm, [s])
    np.testing.assert_allclose(st.logprob, [-math.log(6), -math.log(2), -math.log(6)], atol=1e-7)
    np.testing.assert_allclose(st.mu, [-math.log(12) / 2] * 3, atol=1e-7)
    np.testing.assert_allclose(st.sigma, [math.log(3) / 2] * 3, atol=1e-7)
    np.testing.assert_allclose(st.z, [-1, 1, -1], atol=1e-6)
    loss = (2 * math.log(6) + math.log(2)) / 3
    row = mia_scores(lm, [s], k=0.2).iloc[0]
    assert row["n_tokens"] == 3
    assert row["loss"] == pytest.approx(loss, abs=1e-7)
    assert row["score_loss"] == pytest.approx(-loss, abs=1e-7)
    assert row["zlib_entropy"] == len(zlib.compress(b"ab"))  # decoded without special tokens (id 0)
    assert row["score_zlib"] == pytest.approx(-loss / len(zlib.compress(b"ab")), abs=1e-9)
    assert row["score_min_k"] == pytest.approx(-math.log(6), abs=1e-7)  # floor(0.2*3) = 0 -> 1 token
    assert row["score_min_k_pp"] == pytest.approx(-1, abs=1e-6)
    whole = mia_scores(lm, [s], k=1.0).iloc[0]  # k = 100%: the plain means
    assert whole["score_min_k"] == pytest.approx(-loss, abs=1e-7)
    assert whole["score_min_k_pp"] == pytest.approx(-1 / 3, abs=1e-6)
    suffix = mia_scores(lm, [s], positions="suffix").iloc[0]  # scored: 0, 2
    assert suffix["n_tokens"] == 2
    assert suffix["loss"] == pytest.approx(math.log(12) / 2, abs=1e-7)


def test_every_attack_on_three_tokens_by_hand():
    # logits given the previous token: row 0 [ln 3, 0, 0, 0] -> p = (1/2, 1/6, 1/6, 1/6), two values of log p
    # with mass 1/2 each: mu = -ln(12)/2, sigma = ln(3)/2, z = +1 for token 0, -1 otherwise; row 1 uniform:
    # sigma = 0, z = 0; row 2 [ln 3, ln 3, 0, 0] -> p = (3/8, 3/8, 1/8, 1/8): log p = ln(3/8) with mass 3/4 and
    # ln(1/8) with mass 1/4, so log p - mu = (1/4) ln 3 for tokens 0, 1 and sigma = sqrt(3/16) ln 3, z = 1/sqrt 3.
    # Text 0 2 | 1 3 scores 2|0, 1|2, 3|1: log p = -ln 6, ln(3/8), -ln 4 (loss = ln(64)/3 = ln 4),
    # z = -1, 1/sqrt 3, 0.
    table = [[math.log(3), 0, 0, 0], [0, 0, 0, 0], [math.log(3), math.log(3), 0, 0], [math.log(3), 0, 0, 0]]
    lm = bigram_lm(table)
    reference = bigram_lm(np.tile([math.log(3), 0, 0, 0], (4, 1)))  # every scored token has p = 1/6
    s = sample("s", prefix=(0, 2), suffix=(1, 3))
    (st,) = token_stats(lm, [s])
    np.testing.assert_allclose(st.logprob, [-math.log(6), math.log(3 / 8), -math.log(4)], atol=1e-7)
    np.testing.assert_allclose(st.sigma, [math.log(3) / 2, math.sqrt(3) / 4 * math.log(3), 0], atol=1e-7)
    np.testing.assert_allclose(st.z, [-1, 1 / math.sqrt(3), 0], atol=1e-6)
    rows = {k: mia_scores(lm, [s], reference=reference, k=k).iloc[0] for k in (0.34, 0.67, 1.0)}
    row = rows[1.0]
    assert row["loss"] == pytest.approx(math.log(4), abs=1e-7) and row["n_tokens"] == 3
    assert row["loss_ref"] == pytest.approx(math.log(6), abs=1e-7)
    assert row["score_ref"] == pytest.approx(math.log(1.5), abs=1e-7)  # loss_ref - loss = ln 6 - ln 4
    assert row["score_zlib"] == pytest.approx(-math.log(4) / len(zlib.compress(b"bac")), abs=1e-9)  # "_bac", no "_"
    assert rows[0.34]["score_min_k"] == pytest.approx(-math.log(6), abs=1e-7)  # floor(1.02) = 1 lowest: -ln 6
    assert rows[0.67]["score_min_k"] == pytest.approx(-math.log(24) / 2, abs=1e-7)  # mean of -ln 6 and -ln 4
    assert row["score_min_k"] == pytest.approx(-math.log(4), abs=1e-7)  # k = 100%: minus the loss
    assert rows[0.34]["score_min_k_pp"] == pytest.approx(-1, abs=1e-6)
    assert rows[0.67]["score_min_k_pp"] == pytest.approx(-0.5, abs=1e-6)  # mean of z = -1 and z = 0
    assert row["score_min_k_pp"] == pytest.approx((1 / math.sqrt(3) - 1) / 3, abs=1e-6)


@pytest.mark.parametrize("vocab", [6, 512])
def test_uniform_logits(vocab):
    # with 512 tokens, float rounding leaves sigma ~ 1e-15 and log p - mu ~ 1e-15: z must still be 0
    lm = bigram_lm(np.zeros((vocab, vocab)))
    frame = mia_scores(lm, [sample("u", (1, 2, 3), (4, 5, 1, 2)), sample("v", (5,), (3, 3))])
    np.testing.assert_allclose(frame["loss"], math.log(vocab), atol=1e-12)
    np.testing.assert_allclose(frame["score_min_k"], -math.log(vocab), atol=1e-12)
    assert (frame["score_min_k_pp"] == 0.0).all()  # (log p - mu) / sigma is 0/0: defined as 0
    assert frame["n_tokens"].tolist() == [6, 2]
    texts = ["abcdeab", "ecc"]
    np.testing.assert_allclose(frame["score_zlib"], [-math.log(vocab) / len(zlib.compress(t.encode())) for t in texts])


def test_impossible_tokens_do_not_give_nan():
    lm = bigram_lm(np.tile([0, 0, 0, -np.inf], (4, 1)))  # uniform over 3 tokens, token 3 impossible
    (st,) = token_stats(lm, [sample("s", (1, 2), (0, 1))])
    np.testing.assert_allclose(st.mu, -math.log(3), atol=1e-12)
    assert np.isfinite(st.sigma).all() and (st.z == 0).all()


def _by_numpy(table, sequence, start, k):
    """The published formulas, straight from the logits table (raw moments for sigma)."""
    table = np.asarray(table, dtype=np.float32).astype(np.float64)
    logp, z = [], []
    for t in range(start, len(sequence)):
        row = table[sequence[t - 1]]
        lp = row - np.log(np.exp(row).sum())
        p = np.exp(lp)
        mu = (p * lp).sum()
        sigma = math.sqrt((p * lp ** 2).sum() - mu ** 2)
        logp.append(lp[sequence[t]])
        z.append((lp[sequence[t]] - mu) / sigma)
    n_low = max(1, int(k * len(logp)))
    return -np.mean(logp), np.mean(np.sort(logp)[:n_low]), np.mean(np.sort(z)[:n_low])


def test_random_bigram_matches_numpy_and_keeps_input_order():
    table = np.random.default_rng(0).normal(scale=2.0, size=(7, 7))
    lm = bigram_lm(table)
    samples = [sample("long", (3, 1, 4, 1, 5), (6, 2, 6, 5, 3, 5), lead=(0,), level=4),
               sample("short", (2,), (1, 1, 2), level=0),
               sample("mid", (6, 6, 6), (1, 2, 3, 4), lead=(0,), level=1, kind="x")]
    frame = mia_scores(lm, samples, k=0.3, batch_size=2)
    assert frame["id"].tolist() == ["long", "short", "mid"]
    assert frame["meta_level"].tolist() == [4, 0, 1] and frame["meta_kind"].isna().tolist() == [True, True, False]
    for s, (_, row) in zip(samples, frame.iterrows()):
        sequence = list(s.prompt_ids) + list(s.suffix_ids)
        start = len(s.prompt_ids) - len(s.prefix_ids) + 1  # the lead and the first text token are context
        loss, min_k, min_k_pp = _by_numpy(table, sequence, start, 0.3)
        assert row["n_tokens"] == len(sequence) - start
        assert row["loss"] == pytest.approx(loss, abs=1e-9)
        assert row["score_min_k"] == pytest.approx(min_k, abs=1e-9)
        assert row["score_min_k_pp"] == pytest.approx(min_k_pp, abs=1e-9)
        text = lm.tokenizer.decode(list(s.prefix_ids) + list(s.suffix_ids), skip_special_tokens=True)
        assert row["score_zlib"] == pytest.approx(-loss / len(zlib.compress(text.encode())), abs=1e-12)


def test_bad_arguments():
    lm = bigram_lm(np.zeros((4, 4)))
    chat = Sample("c", (1, 2), (3,), (0, 1, 2, 3, 0), "chat")  # the prompt wraps the prefix
    with pytest.raises(memkit.MemkitError, match="positions='suffix'"):
        mia_scores(lm, [chat])
    assert mia_scores(lm, [chat], positions="suffix")["n_tokens"].tolist() == [1]
    with pytest.raises(memkit.MemkitError, match="positions"):
        mia_scores(lm, [chat], positions="prefix")
    with pytest.raises(memkit.MemkitError, match="0 < k"):
        mia_scores(lm, [chat], positions="suffix", k=0)


# -- the tiny GPT-NeoX ----------------------------------------------------------------------------
def _records(n=12, words=24):
    words_ = tiny_corpus().split()
    return [{"id": f"r{i}", "text": " ".join(words_[i * words : (i + 1) * words]), "is_member": i % 2 == 0}
            for i in range(n)]


def test_padding_invariance(tiny_lm):
    records = _records(3, words=40)
    short = memkit.make_samples(tiny_lm, records[:1], k=3, m=4)[0]
    target = memkit.make_samples(tiny_lm, records[1:2], k=8, m=8)[0]
    long = memkit.make_samples(tiny_lm, records[2:], k=20, m=16)[0]
    alone = mia_scores(tiny_lm, [target])
    mixed = mia_scores(tiny_lm, [long, target, short], batch_size=8)
    assert mixed["id"].tolist() == [long.id, target.id, short.id]
    np.testing.assert_allclose(mixed.loc[1, SCORES].to_numpy(float), alone.loc[0, SCORES].to_numpy(float), atol=1e-5)


def test_real_samples_reference_and_suffix_logprobs(tiny_lm):
    samples = memkit.make_samples(tiny_lm, _records(), k=8, m=8)
    frame = mia_scores(tiny_lm, samples, reference=tiny_lm, batch_size=5)
    assert len(frame) == 12 and (frame["n_tokens"] == 15).all()
    assert np.isfinite(frame[SCORES + ["score_ref"]].to_numpy(float)).all()
    assert (frame["score_ref"] == 0.0).all()
    assert frame["meta_is_member"].tolist() == [i % 2 == 0 for i in range(12)]
    # positions="suffix" is the teacher-forced suffix log-prob of memkit.ablation, averaged
    suffix = mia_scores(tiny_lm, samples, positions="suffix")
    totals, _ = suffix_logprobs(tiny_lm, samples)
    np.testing.assert_allclose(suffix["loss"], -np.asarray(totals) / 8, atol=1e-5)
    with pytest.raises(memkit.MemkitError, match="does not share the tokenizer"):
        mia_scores(tiny_lm, samples, reference=bigram_lm(np.zeros((5, 5))))


# -- attack metrics -------------------------------------------------------------------------------
def _split(members, nonmembers):
    return np.r_[members, nonmembers], np.r_[np.ones(len(members), bool), np.zeros(len(nonmembers), bool)]


def test_auc_and_tpr_extremes():
    perfect = attack_metrics(*_split(np.arange(30) + 100.0, np.arange(40)), n_boot=0)
    assert perfect["auc"] == 1.0 and perfect["tpr"] == 1.0 and perfect["fpr_achieved"] == 0.0
    reverse = attack_metrics(*_split(np.arange(30), np.arange(40) + 100.0), n_boot=0)
    assert reverse["auc"] == 0.0 and reverse["tpr"] == 0.0
    same = attack_metrics(np.ones(50), np.arange(50) % 2, n_boot=0)
    assert same["auc"] == 0.5 and same["tpr"] == 0.0  # nobody is strictly above the threshold


def test_auc_with_ties_by_hand_and_brute_force():
    members, nonmembers = np.array([1, 2, 2, 3.0]), np.array([2, 0, 2.0])
    # 1 beats 0; each 2 beats 0 and ties both 2s; 3 beats all: (1 + 2 + 2 + 3) / 12
    pairs = sum(1.0 if m > n else 0.5 if m == n else 0.0 for m in members for n in nonmembers)
    assert pairs / 12 == pytest.approx(2 / 3)
    assert attack_metrics(*_split(members, nonmembers), n_boot=0)["auc"] == pytest.approx(2 / 3)


def test_auc_equals_mann_whitney_u():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    members, nonmembers = np.round(rng.normal(0.5, 1, 37), 1), np.round(rng.normal(0, 1, 53), 1)  # with ties
    u = mannwhitneyu(members, nonmembers).statistic
    assert attack_metrics(*_split(members, nonmembers), n_boot=0)["auc"] == pytest.approx(u / (37 * 53), abs=1e-12)


def test_tpr_threshold_convention():
    nonmembers = np.arange(100.0)  # fpr 1%: one non-member may pass, so the threshold is the 2nd highest (98)
    result = attack_metrics(*_split([97, 98, 99, 100.0], nonmembers), fpr=0.01, n_boot=0)
    assert result["tpr"] == 0.5 and result["fpr_achieved"] == 0.01 and not result["tpr_coarse"]
    coarse = attack_metrics(*_split([48, 49, 50.0], np.arange(50.0)), fpr=0.01, n_boot=0)
    assert coarse["tpr_coarse"] and coarse["fpr_achieved"] == 0.0 and coarse["tpr"] == pytest.approx(1 / 3)


def test_bootstrap_ci_rules():
    rng = np.random.default_rng(2)
    scores, labels = _split(rng.normal(1, 1, 60), rng.normal(0, 1, 80))
    a = attack_metrics(scores, labels, fpr=0.1, n_boot=300, seed=7)
    assert a["ci_ok"] and a["n_members"] == 60 and a["n_nonmembers"] == 80
    assert a["auc_lo"] <= a["auc"] <= a["auc_hi"] and a["auc_hi"] - a["auc_lo"] > 0.01
    assert a["tpr_lo"] <= a["tpr"] <= a["tpr_hi"]
    assert attack_metrics(scores, labels, fpr=0.1, n_boot=300, seed=7) == a  # deterministic given the seed
    assert attack_metrics(scores, labels, fpr=0.1, n_boot=300, seed=8)["auc_lo"] != a["auc_lo"]
    few = attack_metrics(*_split(rng.normal(1, 1, 19), rng.normal(0, 1, 80)), n_boot=300)
    assert not few["ci_ok"] and math.isnan(few["auc_lo"]) and math.isnan(few["tpr_hi"])
    assert 0 < few["auc"] <= 1 and few["n_members"] == 19
    with pytest.raises(memkit.MemkitError, match="members and non-members"):
        attack_metrics([1.0, 2.0], [True, True])
    with pytest.raises(memkit.MemkitError, match="NaN"):
        attack_metrics([1.0, float("nan")], [True, False])
    with pytest.raises(memkit.MemkitError, match="0/1"):
        attack_metrics([1.0, 2.0], [2, 0])


def test_attack_table_groups_and_is_deterministic():
    rng = np.random.default_rng(3)
    n = 240
    frame = pd.DataFrame({"size": np.repeat(["small", "large"], n // 2), "level": np.tile([0, 0, 1, 4], n // 4)})
    frame["is_member"] = frame["level"] > 0
    frame["score_a"] = rng.normal(size=n) + frame["level"]
    frame["score_b"] = rng.normal(size=n)
    table = attack_table(frame, by=("size",), members_by="level", n_boot=50)
    assert table[["size", "level", "attack"]].values.tolist() == [
        [s, lv, a] for s in ["large", "small"] for lv in [1, 4] for a in ["a", "b"]]
    assert (table["n_members"] == 30).all() and (table["n_nonmembers"] == 60).all()
    part = frame[(frame["size"] == "small") & (frame["level"].isin([0, 4]))]
    expected = attack_metrics(part["score_a"], part["is_member"], n_boot=50)
    row = table[(table["size"] == "small") & (table["level"] == 4) & (table["attack"] == "a")].iloc[0]
    assert {key: row[key] for key in expected} == expected
    again = attack_table(frame, by=("size",), members_by="level", n_boot=50)
    assert table.to_csv(index=False).encode() == again.to_csv(index=False).encode()
    overall = attack_table(frame, n_boot=0)
    assert overall["attack"].tolist() == ["a", "b"] and overall["n_members"].tolist() == [120, 120]
    with pytest.raises(memkit.MemkitError, match="members_by"):
        attack_table(frame, by=("level",))


def test_cli_mia_scores_and_attack_table(tiny_model_dir, pickle_dir, tmp_path, capsys, monkeypatch):
    """`memkit mia` writes one row per record and prints each attack's AUC; a pickle-only reference
    model is refused in one line unless --allow-pickle, which then reaches the reference too."""
    import json

    from memkit.cli import main

    monkeypatch.delenv("MEMKIT_ALLOW_PICKLE", raising=False)
    data = tmp_path / "d.jsonl"
    words = tiny_corpus().split()
    texts = [" ".join(words[i:i + 20]) for i in range(0, 20 * 24, 20)]
    data.write_text("".join(json.dumps({"id": f"r{i}", "text": text, "member": i % 2 == 0}) + "\n"
                            for i, text in enumerate(texts)))
    argv = ["mia", "--model", str(tiny_model_dir), "--device", "cpu", "--input", str(data), "-k", "4", "-m", "4",
            "--label-field", "member", "--reference", str(pickle_dir), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ships only pickle weights (.bin); pass --allow-pickle" in err
    assert not (tmp_path / "a.parquet").exists()
    assert main([*argv, "--out", str(tmp_path / "b.parquet"), "--allow-pickle"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / "b.parquet")
    assert len(frame) == len(texts) and frame["score_ref"].notna().all()
    # the reference is the same weights, so the reference attack's score is exactly zero
    assert np.allclose(frame["score_ref"], 0.0, atol=1e-6)
    assert out.startswith(f"{tmp_path / 'b.parquet'}: {len(texts)} samples, mean loss ")
    assert out.count("AUC") == 5 and " ref" in out


# -- seeds pooled ---------------------------------------------------------------------------------
def test_seed_pooled_metrics_by_hand():
    # seed 0: members 3, 5 vs non-members 1, 4, 6 -> 3 of 6 pairs won, AUC 1/2; seed 1: members above all, AUC 1
    members = np.array([[3.0, 5.0], [7.0, 8.0]])
    nonmembers = np.array([[1.0, 4.0, 6.0], [1.0, 2.0, 3.0]])
    out = seed_pooled_metrics(members, nonmembers, fpr=0.01, n_boot=100)
    assert out["auc"] == pytest.approx(0.75) and out["n_seeds"] == 2
    assert (out["n_members"], out["n_nonmembers"]) == (2, 3)
    assert out["auc_seed_sd"] == pytest.approx(math.sqrt(0.125))
    # t interval over the two seed AUCs: 0.75 +- t(0.975, 1) sd / sqrt 2 = 0.75 +- 12.706 * 0.25, clipped to [0, 1]
    assert (out["auc_seed_lo"], out["auc_seed_hi"]) == (0.0, 1.0)
    assert t_interval([0.5, 1.0]) == pytest.approx((0.75, 0.75 - 12.7062047 * 0.25, 0.75 + 12.7062047 * 0.25))
    # TPR: 6 pooled controls < 100, so the threshold is the highest control (6): 7 and 8 pass, 3 and 5 do not
    assert out["tpr"] == 0.5 and out["fpr_achieved"] == 0.0 and out["tpr_coarse"]
    assert not out["ci_ok"] and math.isnan(out["auc_lo"]) and math.isnan(out["tpr_hi"])  # 2 < 20 members
    one = seed_pooled_metrics(members[:1], nonmembers[:1], n_boot=0)
    assert one["auc"] == 0.5 and math.isnan(one["auc_seed_lo"]) and math.isnan(one["auc_seed_sd"])
    with pytest.raises(memkit.MemkitError, match="same number of seeds"):
        seed_pooled_metrics(members, nonmembers[:1])
    with pytest.raises(memkit.MemkitError, match="NaN"):
        seed_pooled_metrics([[1.0, np.nan]], [[0.0]])


def test_seed_pooled_tpr_pools_the_controls():
    # 3 seeds x 48 controls = 144 >= 100: one control may pass, the threshold is the 2nd highest of the 144
    nonmembers = np.arange(144.0).reshape(3, 48)  # the highest is 143, the second 142
    members = np.array([[142.5, 0.0], [143.5, 0.0], [10.0, 142.0]])
    out = seed_pooled_metrics(members, nonmembers, fpr=0.01, n_boot=0)
    assert out["tpr"] == pytest.approx(2 / 6) and out["fpr_achieved"] == pytest.approx(1 / 144)
    assert not out["tpr_coarse"]


def test_seed_pooled_bootstrap_draws_the_same_canaries_in_every_seed():
    rng = np.random.default_rng(4)
    members, nonmembers = rng.normal(1, 1, 24), rng.normal(0, 1, 48)
    single = attack_metrics(*_split(members, nonmembers), n_boot=300, seed=5)
    # three identical seeds: each replicate draws the same columns in every seed, as attack_metrics draws them
    pooled = seed_pooled_metrics(np.tile(members, (3, 1)), np.tile(nonmembers, (3, 1)), n_boot=300, seed=5)
    assert pooled["ci_ok"] and pooled["auc"] == pytest.approx(single["auc"])
    assert (pooled["auc_lo"], pooled["auc_hi"]) == pytest.approx((single["auc_lo"], single["auc_hi"]))
    assert pooled["auc_seed_lo"] == pooled["auc_seed_hi"] == pytest.approx(single["auc"])  # no seed variation
    few = seed_pooled_metrics(np.tile(members[:19], (3, 1)), np.tile(nonmembers, (3, 1)), n_boot=300)
    assert not few["ci_ok"] and math.isnan(few["auc_lo"])  # 19 < 20 members: no bootstrap CI


def test_bootstrap_coverage_on_a_simulated_attack():
    """Canary effect + seed noise: score = a_i + e_si, a_i ~ N(1, 1) for members and N(0, 1) for non-members,
    e ~ N(0, 0.5^2). The AUC of one seed is P(a_m + e_m > a_n + e_n) = Phi(1 / sqrt(2 (1 + 0.25))); the 95 %
    canary bootstrap of the mean seed AUC (24 members, 48 controls, 3 seeds) must cover it about 95 % of the time."""
    from scipy.stats import norm

    true_auc = norm.cdf(1 / math.sqrt(2 * 1.25))
    rng = np.random.default_rng(6)
    n_sim, covered = 200, 0
    for i in range(n_sim):
        a_m, a_n = rng.normal(1, 1, 24), rng.normal(0, 1, 48)
        members, nonmembers = a_m + rng.normal(0, 0.5, (3, 24)), a_n + rng.normal(0, 0.5, (3, 48))
        out = seed_pooled_metrics(members, nonmembers, n_boot=200, seed=i)
        covered += out["auc_lo"] <= true_auc <= out["auc_hi"]
    assert 0.88 <= covered / n_sim <= 0.99
