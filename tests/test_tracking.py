"""MLflow logging against a real SQLite tracking store in a temp dir."""

import pandas as pd

from lqrppg.tracking import flatten_params, init_tracking, log_run


def test_log_run_roundtrip_real_sqlite_store(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_tracking(uri)
    artifact = tmp_path / "per_video.csv"
    pd.DataFrame({"session": ["s1"], "hr_pred": [71.0]}).to_csv(artifact, index=False)
    run_id = log_run(
        uri,
        experiment="lqrppg/test",
        run_name="POS/synth",
        params={"method": "POS", "evaluation": {"band_hz": [0.75, 2.5], "hr_method": "fft"}},
        metrics={"mae_label": 1.5, "mae_true": 0.5},
        tags={"method": "POS", "dataset": "synth", "git_sha": "abc", "config_hash": "123"},
        artifacts=[artifact],
        artifact_root=tmp_path / "artifacts",
    )
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.metrics == {"mae_label": 1.5, "mae_true": 0.5}
    assert run.data.params["evaluation.band_hz"] == "[0.75, 2.5]"
    assert run.data.tags["method"] == "POS" and run.data.tags["config_hash"] == "123"
    assert run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run_id)] == ["per_video.csv"]
    assert (tmp_path / "artifacts").is_dir()
    # a second run lands in the same experiment
    second = log_run(uri, "lqrppg/test", "x", {}, {"m": 1.0}, {})
    assert client.get_run(second).info.experiment_id == run.info.experiment_id


def test_flatten_params_nested():
    assert flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {"a.b": "1", "a.c.d": "x", "e": "[1, 2]"}
