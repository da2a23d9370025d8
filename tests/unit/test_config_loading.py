"""Config loading (seg/config/loading.py): typed sections from YAML, unknown keys with suggestions, flat views."""

from __future__ import annotations

import pytest

from seg.config import Config, ConfigError, ModelConfig, flatten, load_config, to_dict


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    assert load_config().model == ModelConfig()


def test_lists_become_tuples_and_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  channels: [8, 16, 32]\n  strides: [2, 2]\n  deep_supervision: 1\n"))
    assert cfg.model.channels == (8, 16, 32)
    with pytest.raises(AttributeError):
        cfg.model.channels = (1,)  # type: ignore[misc]


def test_unknown_key_names_file_and_suggests(tmp_path):
    path = write(tmp_path, "model:\n  chanels: [8, 16]\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'model.chanels'. Did you mean 'model.channels'\?"):
        load_config(path)


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'modle'. Did you mean 'model'\?"):
        load_config(write(tmp_path, "modle: {}\n"))


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"'model.kernel_size' must be int, got str 'three'"):
        load_config(write(tmp_path, "model:\n  kernel_size: three\n"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [\n"))


def test_overrides_by_dotted_key():
    assert load_config(overrides={"model.spatial_dims": 2}).model.spatial_dims == 2


def test_optional_and_union_fields(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  gate_levels: [0, 2]\n  encoder_attention: se\n"))
    assert cfg.model.gate_levels == (0, 2) and cfg.model.encoder_attention == "se"
    assert load_config(write(tmp_path, "model:\n  gate_levels: null\n")).model.gate_levels is None


def test_to_dict_is_plain_and_loads_back(tmp_path):
    import yaml

    cfg = load_config(overrides={"model.decoder_attention": {0: "se"}, "train.augment.flip_axes": [0]})
    plain = to_dict(cfg)
    assert plain["model"]["channels"] == [16, 32, 64, 128] and plain["train"]["augment"]["flip_axes"] == [0]
    path = tmp_path / "round.yaml"
    path.write_text(yaml.safe_dump(plain))
    assert load_config(path) == cfg


def test_one_flatten_for_a_config_and_for_a_mapping():
    cfg = load_config(overrides={"model.decoder_attention": {0: "se"}})
    flat = flatten(cfg)
    assert flat["model.channels"] == [16, 32, 64, 128]  # a config's tuples become lists, as in to_dict
    assert flat["train.augment.flip_prob"] == 0.5 and "train.augment" not in flat
    assert flat["model.decoder_attention.0"] == "se"  # a mapping-valued field is flattened too
    assert flatten(to_dict(cfg)) == flat
    parsed = {"train": {"lr": 0.01, "augment": {"flip_axes": (0,)}}, "seed": 1}
    assert flatten(parsed) == {"train.lr": 0.01, "train.augment.flip_axes": (0,), "seed": 1}
    assert flatten(parsed, "params.")["params.seed"] == 1
    assert len(flatten(Config())) == len(flatten(to_dict(Config())))
