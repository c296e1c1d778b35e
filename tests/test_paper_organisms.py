"""Formatting shared by the paper tables (the drivers have their own tests: test_paper_dup, _checkpoints,
_latent, _context)."""

from memkit.paper.report import format_params


def test_format_params():
    assert [format_params(n) for n in (6_592, 9_960, 850_400, 999_600, 1_234_567, 12_345_678)] == [
        "6.6k", "10k", "850k", "1M", "1.2M", "12M"]


def test_format_p_two_significant_digits_and_a_dash_for_no_value():
    from memkit.paper.report import format_p

    assert [format_p(p) for p in (0.0064, 0.25, 1.0, float("nan"), None)] == ["0.0064", "0.25", "1", "--", "--"]
