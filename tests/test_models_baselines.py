"""DeepPhys, TS-CAN and EfficientPhys (rPPG-Toolbox baselines), on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from lqrppg.models import count_parameters
from lqrppg.models.deepphys import DeepPhys, min_image_size
from lqrppg.models.efficientphys import EfficientPhys, frame_differences
from lqrppg.models.tscan import TSCAN, TemporalShift
from lqrppg.objectives import get_objective, loss_name, mse_objective

MODELS = (DeepPhys, TSCAN, EfficientPhys)
IDS = [cls.__name__ for cls in MODELS]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _channels(cls: type) -> int:
    return 6 if cls.input_norm == "diff_and_standardized" else 3


def _clip(cls: type, batch: int, frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, _channels(cls), frames, height, width, generator=g)


# -- registry and contract ------------------------------------------------------------


def test_registry_lists_the_baselines() -> None:
    from lqrppg.models import available_models, get_model

    assert {"deepphys", "tscan", "efficientphys"} <= set(available_models())
    assert get_model("deepphys") is DeepPhys
    assert get_model("tscan") is TSCAN
    assert get_model("efficientphys") is EfficientPhys


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_contract_matches_the_toolbox(cls: type) -> None:
    # The toolbox configs: DeepPhys/TS-CAN take ['DiffNormalized', 'Standardized'], EfficientPhys
    # ['Standardized']; all three regress the DiffNormalized label with MSELoss.
    assert cls.input_norm == ("standardized" if cls is EfficientPhys else "diff_and_standardized")
    assert cls.label_norm == "diff_normalized"
    assert cls.label_type == "continuous"
    assert loss_name(cls) == "mse" and get_objective(loss_name(cls)) is mse_objective
    assert cls.published_input == (180, 72, 72)
    cls.check_input(*cls.published_input)


# -- shapes and input checks ------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
@pytest.mark.parametrize("size", [(20, 36, 36), (10, 10, 10), (10, 16, 24), (30, 13, 11)])
def test_output_is_one_value_per_frame(cls: type, size: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = cls(*size).eval()
    with torch.no_grad():
        out = model(_clip(cls, 2, *size))
    assert out.shape == (2, size[0])
    assert torch.isfinite(out).all()


def test_deepphys_takes_any_frame_count() -> None:
    model = DeepPhys(7, 12, 12).eval()
    with torch.no_grad():
        assert model(_clip(DeepPhys, 1, 7, 12, 12)).shape == (1, 7)


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_dense_width_follows_the_image_size(cls: type) -> None:
    # The toolbox's hard-coded table (DeepPhys.py / TS_CAN.py / EfficientPhys.py), computed here.
    for side, features in {36: 3136, 72: 16384, 96: 30976, 128: 57600}.items():
        assert cls(10, side, side).final_dense_1.in_features == features
    assert cls(10, 16, 24).final_dense_1.in_features == 64 * 2 * 4  # 16 -> 14 -> 7 -> 5 -> 2; 24 -> 22 -> 11 -> 9 -> 4
    assert min_image_size() == 10 and min_image_size(final_pool=4) == 14


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_check_input_rejects_empty_feature_maps(cls: type) -> None:
    for height, width in ((9, 36), (36, 9), (4, 4)):
        with pytest.raises(ValueError, match="at least 10"):
            cls.check_input(20, height, width)
        with pytest.raises(ValueError, match="empty feature map"):
            cls(20, height, width)
    with pytest.raises(ValueError, match="at least 14"):
        cls(20, 13, 13, final_pool=4)
    cls.check_input(20, 10, 10)  # the smallest valid size


@pytest.mark.parametrize("cls", [TSCAN, EfficientPhys], ids=["TSCAN", "EfficientPhys"])
def test_check_input_needs_whole_temporal_shift_segments(cls: type) -> None:
    for frames in (0, 5, 15, 181):
        with pytest.raises(ValueError, match="divisible by frame_depth=10"):
            cls.check_input(frames, 36, 36)
    with pytest.raises(ValueError, match="divisible by frame_depth=10"):
        cls(25, 36, 36)
    model = cls(20, 12, 12)
    with pytest.raises(ValueError, match="divisible by frame_depth=10"):
        model(_clip(cls, 1, 15, 12, 12))


def test_deepphys_check_input_rejects_no_frames() -> None:
    with pytest.raises(ValueError, match="at least 1 frame"):
        DeepPhys.check_input(0, 36, 36)


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_forward_rejects_wrong_channels_and_sizes(cls: type) -> None:
    model = cls(10, 12, 12)
    with pytest.raises(ValueError, match="expects"):
        model(torch.zeros(1, 9 - _channels(cls), 10, 12, 12))  # 3 <-> 6 channels
    with pytest.raises(ValueError, match="built for 12x12"):
        model(_clip(cls, 1, 10, 14, 14))


# -- size -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "toolbox_72", "published_m"), [
    (DeepPhys, 2_228_643, 1.98),
    (TSCAN, 2_228_643, 1.98),
    (EfficientPhys, 2_163_081, 1.91),
], ids=IDS)
def test_parameter_counts(cls: type, toolbox_72: int, published_m: float) -> None:
    # At the toolbox's standard 72x72 setting: 2 x 65,568 conv weights (one branch for
    # EfficientPhys, plus its 6 BatchNorm weights), 98 in the attention convs, 16384*128 + 128 in
    # final_dense_1 and 129 in final_dense_2, counted from the toolbox's layer definitions.
    assert count_parameters(cls(*cls.published_input)) == toolbox_72
    # method.md §10's cost table (RhythmMamba Table 5 = RhythmFormer's cost_cal.md): 1.98 M for
    # DeepPhys and TS-CAN, 1.91 M for EfficientPhys. RhythmFormer's cost_cal.py profiles with thop
    # on 900 frames at 128x128, and its cost_cal.md states that for this it widened the last
    # pooling to 4x4 (final_dense_1 of 14400 inputs, not the toolbox's 57600).
    n = count_parameters(cls(900, 128, 128, final_pool=4))
    assert cls(900, 128, 128, final_pool=4).final_dense_1.in_features == 14400
    assert abs(n / 1e6 - published_m) < 0.006  # 1,974,691 -> "1.975M" -> 1.98; 1,909,129 -> 1.91


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_state_dict_has_the_toolbox_names(cls: type) -> None:
    """Released toolbox checkpoints (minus DataParallel's ``module.``) have exactly these tensors."""
    convs = [f"motion_conv{i}" for i in (1, 2, 3, 4)] + ["apperance_att_conv1", "apperance_att_conv2"]
    if cls is not EfficientPhys:
        convs += [f"apperance_conv{i}" for i in (1, 2, 3, 4)]
    expected = {f"{m}.{p}" for m in [*convs, "final_dense_1", "final_dense_2"] for p in ("weight", "bias")}
    if cls is EfficientPhys:
        bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        expected |= {f"batch_norm.{p}" for p in bn}
    state = cls(10, 72, 72).state_dict()
    assert set(state) == expected
    assert state["motion_conv1.weight"].shape == (32, 3, 3, 3)
    assert state["motion_conv4.weight"].shape == (64, 64, 3, 3)
    assert state["apperance_att_conv2.weight"].shape == (1, 64, 1, 1)
    assert state["final_dense_1.weight"].shape == (128, 16384)
    assert state["final_dense_2.weight"].shape == (1, 128)


# -- temporal shift ---------------------------------------------------------------------


def test_temporal_shift_moves_features_inside_segments_only() -> None:
    segment, channels = 10, 7  # fold = 7 // 3 = 2: channels 0-1 from the next frame, 2-3 from the previous
    n = 3 * segment  # e.g. three segments (a clip of 20 frames and a clip of 10, flattened)
    x = (100.0 * torch.arange(n)[:, None] + torch.arange(channels)[None, :] + 1)[:, :, None, None]
    x = x.expand(n, channels, 2, 3).contiguous()
    out = TemporalShift(segment)(x)
    for i in range(n):
        p = i % segment
        torch.testing.assert_close(out[i, :2], x[i + 1, :2] if p < segment - 1 else torch.zeros_like(x[i, :2]))
        torch.testing.assert_close(out[i, 2:4], x[i - 1, 2:4] if p > 0 else torch.zeros_like(x[i, 2:4]))
        torch.testing.assert_close(out[i, 4:], x[i, 4:])
    # The boundary between segments: frame 9 gets nothing from 10, frame 10 nothing from 9.
    assert (out[9, :2] == 0).all() and (out[10, 2:4] == 0).all()


def _changed_frames(model: torch.nn.Module, x: torch.Tensor, x2: torch.Tensor) -> list[set[int]]:
    with torch.no_grad():
        delta = (model(x2) - model(x)).abs()
    return [{t for t in range(delta.shape[1]) if delta[b, t] > 1e-6} for b in range(delta.shape[0])]


def test_tscan_sees_neighbouring_frames_of_its_segment_only() -> None:
    torch.manual_seed(0)
    tscan, deepphys = TSCAN(20, 12, 12).eval(), DeepPhys(20, 12, 12).eval()
    deepphys.load_state_dict(tscan.state_dict())  # same weights: the shifts are the only difference
    x = _clip(TSCAN, 2, 20, 12, 12)

    def poke(frame: int, channels: slice) -> torch.Tensor:
        x2 = x.clone()
        x2[0, channels, frame] += 3.0 * torch.randn(x2[0, channels, frame].shape)
        return x2

    motion, appearance = slice(0, 3), slice(3, 6)
    # Four shifts of one frame each: a change at frame 5 reaches frames 1-9, all in segment 0.
    assert _changed_frames(tscan, x, poke(5, motion)) == [set(range(1, 10)), set()]
    # At the segment's last frame nothing leaks into the next segment (frames 10-19) or clip.
    assert _changed_frames(tscan, x, poke(9, motion)) == [set(range(5, 10)), set()]
    assert _changed_frames(tscan, x, poke(10, motion)) == [set(range(10, 15)), set()]
    # Without shifts (DeepPhys) a frame affects only itself.
    assert _changed_frames(deepphys, x, poke(5, motion)) == [{5}, set()]
    # The appearance branch is not shifted, but its first mask gates motion features that TSM_3
    # and TSM_4 then shift: two frames either way.
    assert _changed_frames(tscan, x, poke(5, appearance)) == [set(range(3, 8)), set()]
    assert _changed_frames(deepphys, x, poke(5, appearance)) == [{5}, set()]


# -- EfficientPhys: differences ---------------------------------------------------------------


def test_frame_differences_repeat_the_last_frame() -> None:
    x = torch.randn(2, 3, 10, 4, 4)
    d = frame_differences(x)
    assert d.shape == x.shape
    torch.testing.assert_close(d[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
    assert (d[:, :, -1] == 0).all()


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_efficientphys_ignores_a_constant_offset(train: bool) -> None:
    torch.manual_seed(0)
    model = EfficientPhys(20, 12, 12).train(train)
    x = _clip(EfficientPhys, 2, 20, 12, 12)

    def run(inp: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks
        with torch.no_grad():
            return model(inp)

    base = run(x)
    shifted = (run(x + 2.5) - base).abs().max()
    # ... but not an offset that changes from frame to frame (the differences change): the check can fail.
    flicker = torch.randn(1, 1, 20, 1, 1, generator=torch.Generator().manual_seed(2))
    changed = (run(x + flicker) - base).abs().max()
    assert shifted < 1e-5 and changed > 1e-3, (shifted, changed)


def test_efficientphys_differences_each_clip_on_its_own() -> None:
    torch.manual_seed(0)
    model = EfficientPhys(10, 12, 12).eval()
    x = _clip(EfficientPhys, 2, 10, 12, 12)
    x2 = x.clone()
    x2[1, :, 0] += 3.0  # the second clip's first frame (the toolbox would difference it against clip 0's last)
    assert _changed_frames(model, x, x2)[0] == set()


# -- training -----------------------------------------------------------------------------


def _pulse_problem(cls: type, frames: int = 20, side: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips whose skin brightens with a pulse p(t), and the DiffNormalized label of p."""
    g = torch.Generator().manual_seed(3)
    t = torch.arange(frames + 1, dtype=torch.float32)
    pulses = torch.stack([torch.sin(2 * math.pi * f * t / 30 + ph) for f, ph in ((1.2, 0.0), (2.0, 1.0))])  # (2, T+1)
    texture = torch.randn(2, 3, 1, side, side, generator=g)
    skin = torch.zeros(1, 1, 1, side, side)
    skin[..., 3:-3, 3:-3] = 1.0
    video = texture + 0.3 * pulses[:, None, :, None, None] * skin  # (2, 3, T+1, H, W)
    standardized = video[:, :, :frames]
    diff = video[:, :, 1:] - video[:, :, :-1]
    diff = diff / diff.std()
    x = torch.cat([diff, standardized], 1) if _channels(cls) == 6 else standardized
    label = pulses[:, 1:] - pulses[:, :-1]
    return x, label / label.std()


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_a_few_mse_steps_reduce_the_loss(cls: type) -> None:
    torch.manual_seed(0)
    model = cls(20, 12, 12)
    x, label = _pulse_problem(cls)
    objective = get_objective(loss_name(cls))
    batch = {"label": label}

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(objective(model(x), batch, 30.0)[0])

    before = eval_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    for _ in range(40):
        model.train()
        opt.zero_grad()
        loss, parts = objective(model(x), batch, 30.0)
        loss.backward()
        opt.step()
    assert set(parts) == {"mse"}
    after = eval_loss()
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
def test_gradients_reach_every_parameter(cls: type) -> None:
    torch.manual_seed(0)
    model = cls(10, 12, 12).train()
    x, label = _pulse_problem(cls, frames=10)
    loss, _ = mse_objective(model(x), {"label": label}, 30.0)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_attention_mask_is_the_sigmoid_map_scaled_to_mean_one_half() -> None:
    from lqrppg.models.deepphys import AttentionMask

    g = torch.sigmoid(torch.randn(4, 1, 5, 7))
    mask = AttentionMask()(g)
    torch.testing.assert_close(mask.mean(dim=(2, 3)), torch.full((4, 1), 0.5))
    torch.testing.assert_close(mask / g, (mask / g)[:, :, :1, :1].expand_as(g))  # proportional per image
