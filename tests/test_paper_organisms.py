"""Formatting shared by the organism tables (the drivers have their own tests: test_paper_dup, _checkpoints,
_latent, _context)."""

from memkit.paper.report import format_params


def test_format_params():
    assert [format_params(n) for n in (850_400, 1_234_567, 12_345_678)] == ["850k", "1.2M", "12M"]
