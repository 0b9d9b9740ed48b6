"""Paper-layout tables: our rows from metrics files, quoted rows in their own block, LaTeX."""

from __future__ import annotations

import pandas as pd
import pytest

from lqrppg import published
from lqrppg.errors import DataError
from lqrppg.tables import write_table

METRICS = ["MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC"]


def _metrics_file(path, identity: dict, mae: float, references=("label",)):
    rows = []
    for reference in references:
        for i, metric in enumerate(METRICS):
            value = mae + i if metric != "Pearson" else 0.5
            rows.append({**identity, "reference": reference, "metric": metric, "value": value, "se": 0.1,
                         "se_formula": "x", "n": 8})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_intra_table_in_the_paper_layout_keeps_quoted_rows_apart(tmp_path):
    ours = [
        _metrics_file(tmp_path / f"m/{model}/UBFC-rPPG/published.csv",
                      dict(protocol="published", test="UBFC-rPPG", train="UBFC-rPPG", model=model), mae)
        for model, mae in (("lqrppg", 0.42), ("physnet", 3.3))
    ]
    write_table("intra", ours, tmp_path / "t/intra")
    md = (tmp_path / "t/intra.md").read_text()
    ours_block, quoted_block = md.split("## Published (")[0], md.split("## Published (")[1].split("Detail")[0]
    # our numbers come from our files, with ± SE, and name their file ...
    assert "| lqrppg | 0.42 ± 0.10 | 1.42 ± 0.10 | 0.500 ± 0.100 | " in ours_block
    assert str(ours[0]) in ours_block
    # ... the quoted ones stand in their own block, labelled with their source, never among ours
    assert published.INTRA_SOURCE in quoted_block and "| RhythmMamba | 0.23 | 0.34 | 0.990 |" in quoted_block
    assert "RhythmMamba" not in ours_block and "lqrppg" not in quoted_block
    paper = pd.read_csv(tmp_path / "t/intra.paper.csv")
    quoted_rows = paper[paper["source"].str.startswith("quoted:")]
    assert set(quoted_rows["model"]) >= {"PhysNet", "RhythmMamba", "TS-CAN"}
    assert not paper[~paper["source"].str.startswith("quoted:")]["model"].isin(quoted_rows["model"]).any()
    tex = (tmp_path / "t/intra.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2 and r"\rho" in tex and r"0.42 $\pm$ 0.10" in tex
    assert r"\multicolumn{3}{c}{UBFC-rPPG}" in tex


def test_cross_table_groups_columns_by_pair(tmp_path):
    f = _metrics_file(tmp_path / "m/lqrppg/PURE/cross-UBFC-rPPG.csv",
                      dict(protocol="cross", test="UBFC-rPPG", train="PURE", model="lqrppg"), 1.0)
    write_table("cross", [f], tmp_path / "cross")
    md = (tmp_path / "cross.md").read_text()
    assert "| model | PURE → UBFC-rPPG MAE | PURE → UBFC-rPPG RMSE | PURE → UBFC-rPPG MAPE |" in md
    assert "| RhythmMamba | 1.98 | 6.51 | 3.59 | 0.960 | 8.94 |" in md  # UBFC→PURE, quoted


def test_ablation_table_lists_each_group_and_reuses_the_reference_run(tmp_path):
    ref = _metrics_file(tmp_path / "m/lqrppg/calm/intra.csv",
                        dict(protocol="intra", test="calm", train="calm", model="lqrppg"), 1.0, ("label", "true"))
    cap = _metrics_file(tmp_path / "m/lqrppg-bits1/calm/intra.csv",
                        dict(protocol="intra", test="calm", train="calm", model="lqrppg-bits1"), 4.0, ("label", "true"))
    wide = write_table("ablation", [cap, ref, ref], tmp_path / "ablation", groups=["levels", "levels", "label"])
    assert sorted(wide.query("reference == 'true'")["group"]) == ["label", "levels", "levels"]
    md = (tmp_path / "ablation.md").read_text()
    assert "## This run, scored against the true pulse (synthetic data only) — levels" in md
    assert "## This run, scored against the contact-PPG label — label" in md
    assert "Published" not in md  # no quoted rows exist for our ablations
    with pytest.raises(DataError, match="3 metrics files but 2 group names"):
        write_table("ablation", [cap, ref, ref], tmp_path / "x", groups=["levels", "label"])


def test_quoted_rows_are_the_reference_numbers():
    rows = pd.DataFrame(published.quoted_rows("cost")).set_index(["model", "metric"])["value"]
    assert rows[("RhythmMamba", "macs_m")] == 80.90 and rows[("LQ-rPPG", "macs_m")] == 57.09
    # the abstract's claims follow from the quoted thop figures (method.md §7)
    assert 1 - rows[("LQ-rPPG", "params_m")] / rows[("RhythmMamba", "params_m")] == pytest.approx(0.88, abs=0.005)
    assert 1 - rows[("LQ-rPPG", "macs_m")] / rows[("RhythmMamba", "macs_m")] == pytest.approx(0.29, abs=0.005)
    with pytest.raises(ValueError, match="no quoted rows"):
        published.quoted_rows("nope")
