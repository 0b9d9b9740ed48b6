"""metric_table on a small case worked out by hand from evaluation.md §2."""

import math

import numpy as np
import pytest

from lqrppg.signal.metrics import metric_table

# errors e = pred - ref = [1, -2, 3]
PRED = [61.0, 68.0, 83.0]
REF = [60.0, 70.0, 80.0]


def row(table, metric):
    return table.set_index("metric").loc[metric]


def test_hand_computed_case():
    table = metric_table(PRED, REF, snr=[2.0, 4.0], macc=[0.5, 0.7, 0.9])
    assert list(table.columns) == ["metric", "value", "se", "se_formula", "n"]
    assert list(table["metric"]) == ["MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC"]

    # MAE: mean(1, 2, 3) = 2; |e| std (ddof 0) = sqrt(2/3); se = sqrt(2/3)/sqrt(3)
    assert row(table, "MAE")["value"] == pytest.approx(2.0)
    assert row(table, "MAE")["se"] == pytest.approx(0.4714045208)
    assert row(table, "MAE")["se_formula"] == "std(|e|)/sqrt(n)"
    # RMSE: sqrt(14/3); e^2 = [1, 4, 9], std = sqrt(98/9) = 3.2998316; se = sqrt(3.2998316 / sqrt(3))
    assert row(table, "RMSE")["value"] == pytest.approx(2.1602468995)
    assert row(table, "RMSE")["se"] == pytest.approx(1.3802748599)
    assert row(table, "RMSE")["se_formula"] == "sqrt(std(e^2)/sqrt(n))"
    # MAPE: 100 * mean(1/60, 2/70, 3/80)
    assert row(table, "MAPE")["value"] == pytest.approx(2.7579365079)
    assert row(table, "MAPE")["se"] == pytest.approx(0.4927137707)
    # Pearson: cov sum 220, sums of squares 758/3 and 200 -> 220/sqrt(758/3*200); se = sqrt(1 - rho^2)
    assert row(table, "Pearson")["value"] == pytest.approx(0.9786642127)
    assert row(table, "Pearson")["se"] == pytest.approx(0.2054661988)
    # SNR: mean 3, std 1, se 1/sqrt(2); MACC: mean 0.7, std sqrt(0.08/3), se that / sqrt(3)
    assert row(table, "SNR")["value"] == pytest.approx(3.0)
    assert row(table, "SNR")["se"] == pytest.approx(1 / math.sqrt(2))
    assert row(table, "SNR")["n"] == 2
    assert row(table, "MACC")["value"] == pytest.approx(0.7)
    assert row(table, "MACC")["se"] == pytest.approx(0.0942809042)
    assert set(table["n"][:4]) == {3}


def test_rmse_se_old_formula_has_no_square_root():
    table = metric_table(PRED, REF, rmse_se="std_sq_over_sqrt_n")
    # std(e^2)/sqrt(n) = 3.2998316 / sqrt(3)
    assert row(table, "RMSE")["se"] == pytest.approx(1.9051586888)
    assert row(table, "RMSE")["se_formula"] == "std(e^2)/sqrt(n)"
    with pytest.raises(ValueError, match="rmse_se"):
        metric_table(PRED, REF, rmse_se="bootstrap")


def test_snr_and_macc_rows_only_when_given():
    assert list(metric_table(PRED, REF)["metric"]) == ["MAE", "RMSE", "MAPE", "Pearson"]
    assert list(metric_table(PRED, REF, macc=[0.5])["metric"]) == ["MAE", "RMSE", "MAPE", "Pearson", "MACC"]


def test_nan_pairs_are_ignored_and_n_reports_what_was_used():
    table = metric_table(PRED + [np.nan, 75.0], REF + [70.0, np.nan], snr=[2.0, np.nan, 4.0])
    assert row(table, "MAE")["value"] == pytest.approx(2.0)
    assert row(table, "MAE")["n"] == 3
    assert row(table, "SNR")["n"] == 2


def test_pearson_se_is_nan_below_three_pairs():
    table = metric_table([61.0, 68.0], [60.0, 70.0])
    assert row(table, "Pearson")["value"] == pytest.approx(1.0)
    assert math.isnan(row(table, "Pearson")["se"])


def test_empty_input_gives_nan_rows():
    table = metric_table([np.nan], [60.0])
    assert table["value"].isna().all()
    assert (table["n"] == 0).all()


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="length"):
        metric_table([1.0, 2.0], [1.0])
