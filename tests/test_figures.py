"""Figures: ablation curves from the ablation table, Bland-Altman plots from per-video results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lqrppg.cli import main
from lqrppg.config import AblationCurve, AblationGroup
from lqrppg.errors import DataError
from lqrppg.figures import ablation_curves, bland_altman, bland_altman_points
from lqrppg.tables import write_table

# MAE of each (model, dataset, reference) in the fake evaluation files below
MAE = {
    ("lqrppg", "noise-0", "true"): 1.5, ("lqrppg", "noise-2", "true"): 2.5, ("lqrppg", "noise-4", "true"): 4.0,
    ("cont", "noise-0", "true"): 1.0, ("cont", "noise-2", "true"): 3.5, ("cont", "noise-4", "true"): 7.0,
    ("lqrppg", "noise-0", "label"): 1.6, ("lqrppg", "noise-2", "label"): 5.0, ("lqrppg", "noise-4", "label"): 9.0,
    ("cont", "noise-0", "label"): 1.1, ("cont", "noise-2", "label"): 6.0, ("cont", "noise-4", "label"): 11.0,
}
LEVEL = {"noise-0": 0.0, "noise-2": 2.0, "noise-4": 4.0}


def _metrics_file(path, model, dataset):
    """A metrics CSV as `lqrppg evaluate` writes it (intra protocol), two references, MAE and RMSE."""
    rows = [
        {"protocol": "intra", "test": dataset, "train": dataset, "model": model, "reference": ref, "metric": metric,
         "value": MAE[(model, dataset, ref)] * (1.5 if metric == "RMSE" else 1.0), "se": 0.1 * MAE[(model, dataset, ref)],
         "se_formula": "x", "n": 8}
        for ref in ("label", "true") for metric in ("MAE", "RMSE")
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def ablation_table(tmp_path):
    files, groups = [], []
    for model in ("lqrppg", "cont"):
        for dataset in LEVEL:
            files.append(_metrics_file(tmp_path / "metrics" / model / dataset / "intra.csv", model, dataset))
            groups.append("label-noise")
    write_table("ablation", files, tmp_path / "tables" / "ablation", groups=groups)
    return tmp_path / "tables" / "ablation.csv"


def _noise_group():
    return AblationGroup(name="label-noise", description="noise sweep", models=["lqrppg", "cont"],
                         datasets=list(LEVEL), curve=AblationCurve(of="dataset", label="label noise", values=LEVEL))


def test_ablation_curve_plots_the_table_cells_at_their_axis_positions(ablation_table, tmp_path):
    out = tmp_path / "figures"
    no_curve = AblationGroup(name="other", models=["lqrppg"], datasets=["noise-0"])
    written = ablation_curves(ablation_table, [_noise_group(), no_curve], out)
    assert sorted(p.name for p in written) == ["ablation-label-noise.csv", "ablation-label-noise.pdf",
                                               "ablation-label-noise.png"]
    assert (out / "ablation-label-noise.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "ablation-label-noise.pdf").read_bytes()[:4] == b"%PDF"
    points = pd.read_csv(out / "ablation-label-noise.csv")
    assert len(points) == 12  # 2 models x 3 datasets x 2 references
    for p in points.itertuples():
        assert p.value == MAE[(p.series, p.key, p.reference)]
        assert p.x == LEVEL[p.key]
        assert math.isclose(p.se, 0.1 * p.value)
        assert p.source.endswith(f"metrics/{p.series}/{p.key}/intra.csv")  # traces back to the metrics file
    lq_true = points.query("series == 'lqrppg' and reference == 'true'")
    assert list(lq_true["x"]) == [0.0, 2.0, 4.0]  # drawn in axis order
    assert not list(out.glob(".*"))  # no temporary files left


def test_ablation_curve_along_models_and_another_metric(tmp_path):
    files = [_metrics_file(tmp_path / "m" / m / "noise-0" / "intra.csv", m, "noise-0") for m in ("lqrppg", "cont")]
    write_table("ablation", files, tmp_path / "ablation", groups=["levels", "levels"])
    group = AblationGroup(name="levels", models=["cont", "lqrppg"], datasets=["noise-0"],
                          curve=AblationCurve(of="model", label="bits", values={"cont": 1, "lqrppg": 5}))
    ablation_curves(tmp_path / "ablation.csv", [group], tmp_path / "fig", metric="RMSE")
    points = pd.read_csv(tmp_path / "fig" / "ablation-levels.csv")
    assert set(points["series"]) == {"noise-0"} and set(points["metric"]) == {"RMSE"}
    got = points.set_index(["x", "reference"])["value"]
    assert got[(1.0, "true")] == 1.5 * MAE[("cont", "noise-0", "true")]
    assert got[(5.0, "label")] == 1.5 * MAE[("lqrppg", "noise-0", "label")]


def test_ablation_curve_names_what_the_table_lacks(ablation_table, tmp_path):
    group = AblationGroup(name="label-noise", models=["lqrppg", "cont"], datasets=[*LEVEL, "noise-9"],
                          curve=AblationCurve(of="dataset", label="x", values={**LEVEL, "noise-9": 9.0}))
    with pytest.raises(DataError, match=r"group 'label-noise' has no rows for dataset \['noise-9'\]"):
        ablation_curves(ablation_table, [group], tmp_path / "out")
    renamed = AblationGroup(name="elsewhere", models=["lqrppg"], datasets=["noise-0", "noise-2"],
                            curve=AblationCurve(of="dataset", label="x", values={"noise-0": 0, "noise-2": 2}))
    with pytest.raises(DataError, match="no rows of group 'elsewhere'"):
        ablation_curves(ablation_table, [renamed], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _per_video(path, errors, hr_true=(60.0, 72.0, 85.0, 100.0)):
    hr_true = np.asarray(hr_true)
    frame = pd.DataFrame({"model": "lqrppg", "session": [f"s{i}" for i in range(len(hr_true))], "window": 0,
                          "hr_pred": hr_true + np.asarray(errors), "hr_label": hr_true + 0.5, "hr_true": hr_true})
    frame.to_parquet(path)
    return path


def test_bland_altman_bias_and_limits_of_agreement(tmp_path):
    errors = [1.0, -1.0, 3.0, -3.0]  # bias 0, SD sqrt(20/3)
    per_video = pd.read_parquet(_per_video(tmp_path / "pv.parquet", errors))
    points, s = bland_altman_points(per_video, "true")
    assert s["n"] == 4 and s["bias"] == pytest.approx(0.0)
    assert s["sd"] == pytest.approx(math.sqrt(20 / 3))
    assert (s["loa_low"], s["loa_high"]) == pytest.approx((-1.96 * math.sqrt(20 / 3), 1.96 * math.sqrt(20 / 3)))
    assert list(points["difference"]) == errors
    assert list(points["mean"]) == [60.5, 71.5, 86.5, 98.5]
    _, s_label = bland_altman_points(per_video, "label")  # every estimate is 0.5 bpm below the label on average
    assert s_label["bias"] == pytest.approx(-0.5)


def test_bland_altman_writes_both_references_with_their_points(tmp_path):
    source = _per_video(tmp_path / "intra.per_video.parquet", [2.0, 0.0, -1.0, 5.0])
    assert main(["figures", "bland-altman", "--per-video", str(source), "--title", "lqrppg on x",
                 "--out", str(tmp_path / "fig" / "intra")]) == 0
    assert (tmp_path / "fig" / "intra.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fig" / "intra.pdf").read_bytes()[:4] == b"%PDF"
    points = pd.read_csv(tmp_path / "fig" / "intra.csv")
    assert sorted(set(points["reference"])) == ["label", "true"] and len(points) == 8
    true = points[points["reference"] == "true"]
    assert true["bias"].iloc[0] == pytest.approx(1.5) and (points["source"] == str(source)).all()


def test_bland_altman_refuses_bad_results_naming_the_file(tmp_path):
    missing = tmp_path / "nothing.parquet"
    with pytest.raises(DataError, match="cannot read per-video results .*nothing.parquet"):
        bland_altman([missing], tmp_path / "out")
    no_pred = tmp_path / "no_pred.parquet"
    pd.DataFrame({"session": ["a", "b"], "hr_true": [60.0, 70.0]}).to_parquet(no_pred)
    with pytest.raises(DataError, match="lack column 'hr_pred'"):
        bland_altman([no_pred], tmp_path / "out")
    one = _per_video(tmp_path / "one.parquet", [1.0], hr_true=(70.0,))
    with pytest.raises(DataError, match="needs at least 2 videos"):
        bland_altman([one], tmp_path / "out")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.png").exists()
