import json
from pathlib import Path

import pytest
import yaml

from lqrppg.config import json_schema, load_config, validate_config
from lqrppg.errors import ConfigError

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
