"""The command line, as a user runs it: every stage has --help, bad input stops with one
clear error naming the file or key, and no partial output is left behind."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import yaml
from fixtures_layouts import write_avi, face_frames, write_ubfc_label, write_ubfc_rppg

from lqrppg.cli import build_parser, main

COMMANDS = [
    ["config", "schema"], ["config", "show"], ["init-tracking"], ["synth"], ["acquire"],
    ["preprocess"], ["unsupervised"], ["tables"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lqrppg" in capsys.readouterr().out


def _project(tmp_path, root):
    """A config with one real-layout dataset (UBFC-rPPG) at ``root``."""
    cfg = {
        "results_dir": str(tmp_path / "results"),
        "datasets": {"ubfc": {"reader": "ubfc-rppg", "root": str(root), "fps": 30.0}},
        "preprocess": {"size": 36, "chunk_length": 32},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(caplog, *argv) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="lqrppg"):
        code = main([str(a) for a in argv])
    return code, caplog.text


def _acquire_and_preprocess(tmp_path, caplog, config):
    code, text = _run(caplog, "acquire", "--config", config, "--dataset", "ubfc")
    if code:
        return code, text
    return _run(caplog, "preprocess", "--config", config, "--dataset", "ubfc", "--out", tmp_path / "store")


def test_good_dataset_goes_through_acquire_and_preprocess(tmp_path, caplog):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1", "subject2"], n_frames=64)
    config = _project(tmp_path, root)
    assert _acquire_and_preprocess(tmp_path, caplog, config) == (0, "")
    assert (tmp_path / "results/raw/ubfc/manifest.parquet").is_file()
    assert (tmp_path / "store/index.parquet").is_file()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())


def _short_label(path):
    write_ubfc_label(path, np.sin(np.arange(20.0)), 30.0)


def _nan_label(path):
    values = np.sin(np.arange(64.0))
    values[10] = np.nan
    write_ubfc_label(path, values, 30.0)


@pytest.mark.parametrize(
    "target, damage, message",
    [
        ("vid.avi", _garbage, "cannot open"),
        ("vid.avi", None, "decoded only"),  # truncated raw AVI, like UBFC subject33
        ("ground_truth.txt", lambda p: p.unlink(), "missing"),
        ("ground_truth.txt", _short_label, "shorter than the video"),
        ("ground_truth.txt", _nan_label, "NaN"),
    ],
    ids=["unreadable-video", "truncated-video", "missing-label", "short-label", "nan-label"],
)
def test_bad_input_names_the_file_and_leaves_no_output(tmp_path, caplog, target, damage, message):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1", "subject2"], n_frames=64)
    bad = root / "subject2" / target
    if damage is None:  # rewrite subject2 as an uncompressed AVI, then cut it
        write_avi(bad, face_frames(np.sin(np.arange(64.0))), 30.0, codec="")
        _truncate(bad)
    else:
        damage(bad)
    code, text = _acquire_and_preprocess(tmp_path, caplog, _project(tmp_path, root))
    assert code == 1
    assert message in text
    assert "subject2" in text
    assert not (tmp_path / "store").exists()
    assert not list(tmp_path.glob("results/**/.*tmp*")), "temporary files left behind"


def test_unknown_dataset_name_is_named(tmp_path, caplog):
    config = _project(tmp_path, tmp_path / "UBFC")
    code, text = _run(caplog, "acquire", "--config", config, "--dataset", "PURE")
    assert code == 1 and "unknown dataset 'PURE'" in text


def test_unknown_config_key_is_named(tmp_path, caplog):
    config = _project(tmp_path, tmp_path / "UBFC")
    config.write_text(config.read_text() + "preprocess_typo: {size: 3}\n")
    code, text = _run(caplog, "config", "show", "--config", config)
    assert code == 1 and "unknown config key 'preprocess_typo'" in text


def test_missing_dataset_root_says_where_to_get_it(tmp_path, caplog):
    config = _project(tmp_path, tmp_path / "nowhere")
    code, text = _run(caplog, "acquire", "--config", config, "--dataset", "ubfc")
    assert code == 1
    assert str(tmp_path / "nowhere") in text and re.search("request|licen", text, re.I)


def test_dataset_changed_after_acquire_is_caught(tmp_path, caplog):
    root = tmp_path / "UBFC"
    write_ubfc_rppg(root, ["subject1"], n_frames=64)
    config = _project(tmp_path, root)
    assert _run(caplog, "acquire", "--config", config, "--dataset", "ubfc")[0] == 0
    write_ubfc_label(root / "subject1/ground_truth.txt", np.sin(np.arange(40.0)), 30.0)
    code, text = _run(caplog, "preprocess", "--config", config, "--dataset", "ubfc", "--out", tmp_path / "store")
    assert code == 1 and "changed on disk since acquisition" in text and "ground_truth.txt" in text
    assert not (tmp_path / "store").exists()
