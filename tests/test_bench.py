"""The cost benchmark: thop-style counter, FLOP-counter MACs, the benchmark run and its tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from lqrppg.bench import (
    COLUMNS,
    PAPER_RATIOS,
    _ratio_rows,
    cost_markdown,
    BenchSettings,
    flop_counter_macs,
    nearest_valid_frames,
    run_cost_benchmark,
    scan_macs,
    thop_style_count,
    write_cost_tables,
)
from lqrppg.models import count_parameters, get_model
from lqrppg.models.lqc2f import FusionStem
from lqrppg.models.mamba import BiMamba, BiMambaBlock


class _Fused(nn.Module):
    """Stands for a layer whose work a fused kernel does: the profiler must not see inside."""

    fused_kernel = True

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(5, 5)  # 30 params, called as a module: visible without the rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(  # thop descends into Sequential
            nn.Conv3d(2, 4, kernel_size=(1, 3, 3), padding=(0, 1, 1)),  # 4*2*9 + 4 = 76 params
            nn.BatchNorm3d(4),  # 8 params
            nn.ReLU(),
        )
        self.fc = nn.Linear(4, 5)  # 25 params
        self.pos = nn.Parameter(torch.zeros(1, 1, 4))  # bare parameter: 4, invisible to thop
        self.fused = _Fused()  # 30, invisible
        self.unused = nn.Linear(3, 3)  # 12, never called: its hook never fires

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)  # (1, 4, 3, 4, 4): 192 elements
        y = y.mean((3, 4)).transpose(1, 2) + self.pos  # (1, 3, 4)
        y = self.fc(y)  # (1, 3, 5): 15 elements
        return self.fused(y)


def test_thop_style_count_exact_numbers() -> None:
    net = _Net()
    count = thop_style_count(net, torch.randn(1, 2, 3, 4, 4))
    conv_ops = 192 * 2 * 9  # out elements x (in channels / groups) x kernel, no bias
    bn_ops = 2 * 192 * 2  # 2 per element, doubled for the affine transform
    fc_ops = 4 * 15  # in_features x out elements
    assert count.ops == conv_ops + bn_ops + fc_ops == 4284
    assert count.params == 76 + 8 + 25
    assert count.per_module["features.0"] == (conv_ops, 76)
    assert count.per_module["fused"] == (0, 0)
    assert "fused.inner" not in count.per_module  # no recursion into an opaque module
    # the true count includes the bare parameter, the fused layer's and the never-called layer's
    assert count_parameters(net) == 109 + 4 + 30 + 12
    assert net.training  # training flag restored


def test_fused_rule_is_what_hides_the_layer() -> None:
    """The same layer without fused_kernel is counted: the opaque rule, not luck, hides it."""

    class Plain(_Fused):
        fused_kernel = False

    net = _Net()
    net.fused = Plain()
    count = thop_style_count(net, torch.randn(1, 2, 3, 4, 4))
    assert count.ops == 4284 + 5 * 15
    assert count.params == 109 + 30


def test_bimamba_is_opaque_but_its_layernorm_counts() -> None:
    block = BiMambaBlock(8, d_state=4)
    x = torch.randn(1, 10, 8)
    count = thop_style_count(block, x)
    assert count.params == 16  # LayerNorm weight + bias; nothing of the mixer
    assert count.ops == 4 * x.numel()
    assert count_parameters(block) > 16 + sum(p.numel() for p in block.mamba.parameters()) - 1


def test_thop_style_count_sees_the_difference_conv_as_the_authors_conv2d() -> None:
    # The stem computes its 12-channel difference convolution by linearity from the 3-channel
    # differences; thop on the authors' code sees a Conv2d of 12 stacked channels, and so must we.
    count = thop_style_count(FusionStem(16), torch.randn(1, 6, 3, 16, 16))
    assert count.per_module["stem12.0"] == (6 * 8 * 8 * 8 * 12 * 49, 8 * 12 * 49 + 8)  # (T*C_out*H/2*W/2)*12*7*7
    assert count.per_module["stem11.0"] == (6 * 8 * 8 * 8 * 3 * 49, 8 * 3 * 49 + 8)


def test_flop_counter_linear() -> None:
    layer = nn.Linear(7, 11)
    macs, scan = flop_counter_macs(layer, torch.randn(2, 5, 7))
    assert (macs, scan) == (7 * 11 * 2 * 5, 0)


def test_flop_counter_counts_scan_and_projections() -> None:
    torch.manual_seed(0)
    mixer = BiMamba(8, d_state=4)  # d_inner 16, dt_rank 1
    length = 10
    macs, scan = flop_counter_macs(mixer, torch.randn(1, length, 8))
    u, A = torch.empty(1, 16, length), torch.empty(16, 4)
    assert scan == 2 * scan_macs(u, A, torch.empty(16), torch.empty(1, 16, length)) == 2 * length * 16 * (4 * 4 + 3)
    in_out = 8 * 32 * length + 16 * 8 * length  # in_proj, out_proj (shared by both directions)
    per_branch = 16 * (length + 3) * 4 + 16 * 9 * length + 1 * 16 * length  # conv1d (padded), x_proj, dt_proj
    assert macs == scan + in_out + 2 * per_branch


def test_nearest_valid_frames() -> None:
    physnet = get_model("physnet")  # frame count divisible by 4
    assert nearest_valid_frames(physnet, 160, 32, 32) == 160
    assert nearest_valid_frames(physnet, 161, 32, 32) == 160
    assert nearest_valid_frames(physnet, 163, 32, 32) == 164
    assert nearest_valid_frames(physnet, 162, 32, 32) == 160  # a tie takes the shorter


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        BenchSettings(pases=3)
    with pytest.raises(ValidationError):
        BenchSettings(passes=0)


@pytest.fixture(scope="module")
def bench() -> pd.DataFrame:
    settings = BenchSettings(
        models=["physnet", "lqrppg"], warmup=0, passes=2, clip=18, published=False, reference="physnet", threads=1
    )
    return run_cost_benchmark(default_setting=(16, 16, 16), **settings.model_dump())


def test_run_cost_benchmark_rows(bench: pd.DataFrame) -> None:
    models = bench[bench.row_type == "model"].set_index("model")
    assert list(models.index) == ["physnet", "lqrppg"]
    metrics = ["params_m", "thop_params_m", "thop_macs_m", "flop_macs_m", "throughput_kfps", "peak_memory_mb"]
    values = models[metrics].to_numpy(dtype=float)
    assert (values > 0).all() and pd.notna(values).all() and (values < 1e6).all()
    assert (models.setting == "default").all() and (models.frames == 16).all()
    assert models.loc["physnet", "clip_frames"] == 16  # 18 is not divisible by 4: nearest valid is 16 (tie -> 16)
    assert models.loc["lqrppg", "clip_frames"] == 18
    assert models.loc["lqrppg", "channels"] == 3
    # the thop-style count misses the Mamba mixers and positional embedding; PhysNet has neither
    assert models.loc["lqrppg", "thop_params_m"] < models.loc["lqrppg", "params_m"]
    assert models.loc["physnet", "thop_params_m"] == models.loc["physnet", "params_m"]
    assert models.loc["lqrppg", "scan_macs_m"] > 0 and models.loc["physnet", "scan_macs_m"] == 0
    assert models.memory_method.str.contains("fresh process").all()
    assert (models.torch_threads == 1).all()


def test_run_cost_benchmark_ratio_rows(bench: pd.DataFrame) -> None:
    models = bench[bench.row_type == "model"].set_index("model")
    ratio = bench[bench.row_type == "ratio"]
    assert len(ratio) == 1
    ratio = ratio.iloc[0]
    for column in ["params_m", "thop_params_m", "thop_macs_m", "flop_macs_m", "throughput_kfps", "peak_memory_mb"]:
        expected = models.loc["lqrppg", column] / models.loc["physnet", column]
        assert math.isclose(ratio[column], expected, rel_tol=1e-12)
    assert (bench.row_type == "quoted").sum() == 0  # the paper's ratios are about RhythmMamba only


def test_ratio_rows_against_rhythmmamba_carry_the_quoted_claims() -> None:
    """The ratio section for the paper's pair (synthetic rows: RhythmMamba need not be registered)."""
    rows = [
        {"row_type": "model", "method": name, "model": name, "setting": "published", "params_m": p,
         "thop_params_m": tp, "thop_macs_m": tm, "flop_macs_m": fm, "throughput_kfps": k, "peak_memory_mb": mem,
         "device": "cpu", "torch_threads": 1, "clip_frames": 160, "warmup": 1, "passes": 3}
        for name, p, tp, tm, fm, k, mem in [
            ("lqrppg", 0.405, 0.134, 57.09, 57.04, 3.0, 10.0),
            ("rhythmmamba", 5.0, 1.07, 80.90, 100.0, 1.0, 20.0),
        ]
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=COLUMNS)
    ratios = _ratio_rows(df, "lqrppg", "rhythmmamba").set_index("row_type")
    assert ratios.loc["ratio", "thop_macs_m"] == pytest.approx(57.09 / 80.90)
    assert ratios.loc["ratio", "throughput_kfps"] == pytest.approx(3.0)
    assert ratios.loc["quoted", "thop_params_m"] == pytest.approx(PAPER_RATIOS["thop_params_m"]) == pytest.approx(0.12)
    assert ratios.loc["quoted", "throughput_kfps"] == pytest.approx(2.91)
    md = cost_markdown(pd.concat([df, ratios.reset_index()], ignore_index=True))
    assert "| published | MACs/frame, thop-style (M) | 57.090 | 80.900 | −29% (×0.706) | −29% |" in md
    assert "| published | Throughput (Kfps) | 3.000 | 1.000 | +200% (×3) | +191% |" in md


def test_write_cost_tables(bench: pd.DataFrame, tmp_path) -> None:
    csv_path, md_path = write_cost_tables(bench, tmp_path / "tables", {"config": "tiny"})
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["cost.csv", "cost.md"]  # no temp files
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(bench.columns) and len(back) == len(bench)
    assert back.loc[back.row_type == "model", "flop_macs_m"].tolist() == pytest.approx(
        bench.loc[bench.row_type == "model", "flop_macs_m"].tolist()
    )
    md = md_path.read_text()
    lines = md.splitlines()
    header = "| Method | Params (M) | MACs (M) | Throughput (Kfps) | Peak memory (M) |"
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    table = lines[start : start + 4]  # header, separator, two models
    assert table[1].startswith("|---|")
    assert table[2].startswith("| PhysNet |") and table[3].startswith("| LQ-rPPG |")
    assert len({line.count("|") for line in table}) == 1  # every line has the same number of cells
    assert lines[start + 4] == ""
    assert "## LQ-rPPG vs PhysNet (measured in the same run)" in md
    assert "config: tiny" in md and "Paper (quoted)" not in md


def test_the_bench_command_logs_to_mlflow_and_the_cost_table_quotes_the_paper_apart(tmp_path, monkeypatch) -> None:
    import yaml

    from lqrppg.cli import main
    from tests.conftest import tiny_config

    monkeypatch.chdir(tmp_path)
    cfg = tiny_config()
    cfg["bench"] = {"models": ["lqrppg", "rhythmmamba"], "device": "cpu", "warmup": 0, "passes": 1,
                    "memory": False, "published": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["bench", "--config", "c.yaml", "--threads", "1"]) == 0
    bench = pd.read_csv(tmp_path / "results/bench/cost.csv")
    measured = bench[bench.row_type == "model"]
    assert set(measured.model) == {"lqrppg", "rhythmmamba"} and set(measured.setting) == {"default"}
    assert (measured[["frames", "height"]].to_numpy() == [[64, 16], [64, 16]]).all()  # the config's chunks
    ratio = bench[bench.row_type == "ratio"].iloc[0]
    lq, rm = measured.set_index("model").loc["lqrppg"], measured.set_index("model").loc["rhythmmamba"]
    assert ratio.throughput_kfps == pytest.approx(lq.throughput_kfps / rm.throughput_kfps)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri="sqlite:///results/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("lqrppg/cost").experiment_id])
    assert run.data.metrics["lqrppg.default.throughput_kfps"] == pytest.approx(lq.throughput_kfps)

    assert main(["tables", "cost", "--metrics", "results/bench/cost.csv", "--out-prefix", "results/tables/cost"]) == 0
    md = (tmp_path / "results/tables/cost.md").read_text()
    ours, quoted = md.split("## Published (")
    assert "| LQ-rPPG | 64×16×16 (default) |" in ours and "| RhythmMamba | 1.07 | 80.90 | 20.09 | 6.66 |" in quoted
    assert "20.09" not in ours  # quoted numbers never in our block
    paper = pd.read_csv(tmp_path / "results/tables/cost.paper.csv")
    assert set(paper[paper.source.str.startswith("quoted")]["Method"]) >= {"RhythmMamba", "PhysFormer", "LQ-rPPG"}
    assert (tmp_path / "results/tables/cost.tex").read_text().count(r"\begin{tabular}") == 3


def test_bench_settings_name_unknown_models_at_validation() -> None:
    from lqrppg.config import validate_config
    from lqrppg.errors import ConfigError
    from tests.conftest import tiny_config

    cfg = tiny_config()
    cfg["bench"] = {"models": ["lqrppg", "nosuchnet"]}
    with pytest.raises(ConfigError, match="bench.models: unknown model 'nosuchnet'"):
        validate_config(cfg)
