"""benchmarks/paired.py against published t-table values and a hand-computed paired case."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from paired import paired, t_quantile, t_two_sided_p  # noqa: E402


@pytest.mark.parametrize("df, quantile", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_t_quantiles_match_the_table(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-3)
    assert t_two_sided_p(quantile, df) == pytest.approx(0.05, abs=2e-4)


def test_the_p_value_of_t_one_with_one_degree_of_freedom_is_one_half():
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5, abs=1e-12)  # Cauchy: P(|T| >= 1) = 1/2


def test_a_paired_case_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2; half-width 4.3027 / sqrt 3
    result = paired([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert result.differences == (1.0, 2.0, 3.0) and result.mean == 2.0 and result.positive == 3
    assert result.t == pytest.approx(3.4641, abs=1e-4)
    assert result.ci_low == pytest.approx(2 - 2.4841, abs=1e-3) and result.ci_high == pytest.approx(2 + 2.4841, abs=1e-3)
    assert result.p == pytest.approx(0.0742, abs=5e-4)
