import json
from pathlib import Path

import pytest
import yaml

from lqrppg.config import json_schema, load_config, validate_config
from lqrppg.errors import ConfigError
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_config_is_valid_and_names_two_synthetic_layouts():
    cfg = load_config([ROOT / "config/config.yaml"])
    layouts = {spec.layout for spec in cfg.synthetic.values()}
    assert layouts == {"ubfc-rppg", "pure"}
    assert cfg.mlflow.tracking_uri == "sqlite:///results/mlflow.db"
    assert tuple(cfg.evaluation.band_hz) == (0.75, 2.5)


def test_committed_schema_is_generated_from_the_typed_config():
    committed = json.loads((ROOT / "workflow/schemas/config.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run: lqrppg config schema --out workflow/schemas/config.schema.json"


def test_schema_rejects_unknown_key_like_snakemake_does():
    import jsonschema

    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw["preprocess"]["sizee"] = 64
    with pytest.raises(jsonschema.ValidationError, match="sizee"):
        jsonschema.validate(raw, json_schema())


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"preprocess": {"sizee": 64}}, "unknown config key 'preprocess.sizee'"),
        ({"bogus_top": 1}, "unknown config key 'bogus_top'"),
        ({"datasets": {"real": {"reader": "no-such-reader", "root": "x"}}}, "unknown dataset reader 'no-such-reader'"),
        ({"unsupervised": {"methods": ["POS", "NOPE"]}}, "unknown method 'NOPE'"),
        ({"evaluation": {"band_hz": [2.5, 0.75]}}, "band_hz"),
    ],
)
def test_bad_config_names_the_key(tmp_path, patch, message):
    base = _write(tmp_path, yaml.safe_load((ROOT / "config/config.yaml").read_text()), "base.yaml")
    overlay = _write(tmp_path, patch, "overlay.yaml")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config([base, overlay])


def test_overlay_overrides_nested_values_only(tmp_path):
    base = ROOT / "config/config.yaml"
    overlay = _write(tmp_path, {"preprocess": {"size": 40}})
    cfg = load_config([base, overlay])
    default = load_config([base])
    assert cfg.preprocess.size == 40
    assert cfg.preprocess.chunk_length == default.preprocess.chunk_length
    assert cfg.preprocess.prep_id() != default.preprocess.prep_id()
    assert cfg.store_path("synth-calm") != default.store_path("synth-calm")
    assert cfg.config_hash() != default.config_hash()


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config([tmp_path / "nope.yaml"])


def test_dataset_lookup_names_unknown_dataset():
    cfg = load_config([ROOT / "config/config.yaml"])
    with pytest.raises(ConfigError, match="unknown dataset 'UBFC'"):
        cfg.dataset("UBFC")


def test_name_clash_between_real_and_synthetic(tmp_path):
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw["datasets"] = {"synth-calm": {"reader": "ubfc-rppg", "root": "x"}}
    with pytest.raises(ConfigError, match="both under 'synthetic' and 'datasets'"):
        validate_config(raw)


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nworkers: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config([path])


# ----------------------------------------------------------------------------- per-dataset preprocessing


def _with_real(preprocess: dict, **extra) -> dict:
    raw = tiny_config()
    raw["datasets"] = {"REAL": {"reader": "ubfc-rppg", "root": "/data/real", "fps": 30, "preprocess": preprocess}}
    raw.update(extra)
    return raw


def test_a_dataset_can_change_the_preprocess_settings_for_itself_alone():
    cfg = validate_config(_with_real({"detection": "first", "detect_every": 35}))
    assert cfg.preprocess_for("REAL").detection == "first" and cfg.preprocess_for("REAL").detect_every == 35
    assert cfg.preprocess_for("synth-calm") == cfg.preprocess  # the others keep the global settings
    # a changed setting is a different store: the folder is the hash of the dataset's own settings
    assert cfg.store_path("REAL").name == cfg.preprocess_for("REAL").prep_id() != cfg.preprocess.prep_id()
    assert cfg.store_path("synth-calm").name == cfg.preprocess.prep_id()


def test_a_bad_per_dataset_preprocess_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'datasets\.REAL\.preprocess\.chunk_len'"):
        validate_config(_with_real({"chunk_len": 128}))
    with pytest.raises(ConfigError, match=r"datasets\.REAL\.preprocess\.detection"):
        validate_config(_with_real({"detection": "sometimes"}))


def test_cross_pairs_need_one_model_input_on_both_sides():
    cross = {"intra": {"datasets": []}, "cross": [{"train": "synth-calm", "test": ["REAL"]}]}
    with pytest.raises(ConfigError, match=r"protocols\.cross: synth-calm -> REAL: a model trained on "
                                          r"\(chunk_length, size\) = \(64, 16\) cannot test REAL's \(96, 16\)"):
        validate_config(_with_real({"chunk_length": 96}, protocols=cross))
    validate_config(_with_real({"chunk_length": 64, "detection": "first"}, protocols=cross))  # same input: fine


def test_models_are_checked_against_every_store_they_read():
    # TS-CAN needs a multiple of 10 frames: fine on the global 160... not on REAL's 96
    raw = _with_real({"chunk_length": 96}, models={"tscan": {}})
    raw["preprocess"]["chunk_length"] = 160
    raw["protocols"] = {"intra": {"datasets": ["synth-calm", "REAL"], "folds": 2}, "cross": []}
    with pytest.raises(ConfigError, match=r"models\.tscan: cannot take datasets\.REAL\.preprocess\.chunk_length=96.*"
                                          r"\(dataset REAL\).*frame_depth"):
        validate_config(raw)
    # a 128x128 model entry on a store preprocessed at another size fails before any job
    raw = _with_real({"size": 72}, models={"lqrppg": {"input_size": 128}})
    raw["protocols"] = {"intra": {"datasets": ["REAL"], "folds": 2}, "cross": []}
    with pytest.raises(ConfigError, match=r"models\.lqrppg\.input_size: the model takes 128x128 faces but the store "
                                          r"of REAL is preprocessed at datasets\.REAL\.preprocess\.size=72"):
        validate_config(raw)
