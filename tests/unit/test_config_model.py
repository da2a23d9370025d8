"""The model section (seg/config/model.py): every field checked at load time, with the nearest valid value."""

from __future__ import annotations

import pytest

from seg.config import ConfigError, ModelConfig, load_config


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_strides_must_fit_channels(tmp_path):
    with pytest.raises(ConfigError, match=r"model.strides must have len\(channels\) - 1 = 3 entries, got 2"):
        load_config(write(tmp_path, "model:\n  strides: [2, 2]\n"))


def test_deep_supervision_range(tmp_path):
    with pytest.raises(ConfigError, match=r"deep_supervision must be in \[0, 2\].*got 5"):
        load_config(write(tmp_path, "model:\n  deep_supervision: 5\n"))


@pytest.mark.parametrize(
    "key, typo, valid, nearest",
    [
        ("norm", "instnace", "instance, batch, none", "instance"),
        ("act", "leaky_relu", "leakyrelu, relu, prelu, gelu", "leakyrelu"),
        (
            "gate_mode",
            "concatenation_sofmax",
            "concatenation, concatenation_softmax, concatenation_residual",
            "concatenation_softmax",
        ),
        ("decoder_merge", "1x1x1", "1x1, 3x3", "1x1"),
        ("gate_levels", "al", "all, none, null or a list of skip indices 0..2", "all"),
    ],
)
def test_every_string_option_is_checked_at_load_time_with_the_nearest_value(tmp_path, key, typo, valid, nearest):
    path = write(tmp_path, f"model:\n  {key}: {typo}\n")
    with pytest.raises(
        ConfigError,
        match=rf"{path}: model.{key} must be one of {valid}, got '{typo}'. "
        rf"Did you mean '{nearest}'\?",
    ):
        load_config(path)


@pytest.mark.parametrize(
    "where, text",
    [("encoder_attention", "cbma"), ("encoder_attention", "[null, se, cbma, se]"), ("decoder_attention", "{1: cbma}")],
)
def test_attention_names_are_checked_in_every_placement(tmp_path, where, text):
    with pytest.raises(
        ConfigError,
        match=rf"model.{where} entry must be one of se, cbam, scse, none, got 'cbma'. "
        rf"Did you mean 'cbam'\?",
    ):
        load_config(write(tmp_path, f"model:\n  {where}: {text}\n"))


def test_attention_placement_and_per_axis_strides_load_from_yaml(tmp_path):
    cfg = load_config(
        write(
            tmp_path, "model:\n  decoder_attention: {0: se}\n  strides: [2, [2, 2, 1], 2]\n  stem_stride: [2, 2, 1]\n"
        )
    ).model
    assert cfg.stage_attention()[1] == ("se", None, None)
    assert cfg.strides_per_axis() == ((2, 2, 2), (2, 2, 1), (2, 2, 2)) and cfg.stem_stride_per_axis() == (2, 2, 1)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(channels=(16,), strides=()), r"model.channels needs at least 2 entries"),
        (dict(strides=(2, (2, 2), 2)), r"model.strides\[1\] must be an int >= 1 or 3 of them .* got \(2, 2\)"),
        (dict(stem_stride=0), r"model.stem_stride must be 1 \(full resolution\), 2 \(half\).*got 0"),
        (dict(kernel_size=4), r"model.kernel_size must be an odd int >= 1.*got 4"),
        (dict(gate_levels=(0, 3)), r"model.gate_levels \[3\] out of range; this network has skip levels 0..2"),
        (dict(decoder_attention=["se"]), r"model.decoder_attention: expected 3 entries \(one per stage\), got 1"),
        (dict(encoder_attention={4: "se"}), r"model.encoder_attention: stage index 4 out of range.*stages 0..3"),
        (dict(gate_heads=0), r"model.gate_heads must be an int >= 1, got 0"),
        (dict(first_stage_convs=0), r"model.first_stage_convs must be an int >= 1 or null, got 0"),
        (dict(dropout=1.0), r"model.dropout must be a probability in \[0, 1\), got 1.0"),
    ],
)
def test_model_fields_fit_together(fields, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**fields)
