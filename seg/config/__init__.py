"""Typed, frozen configuration, one dataclass per concern, loaded from YAML.

One module per section (`model`, `data`, `train` with `train.augment`, `infer`, `analyze`, `crossval`, `seam`),
each field documented where it is declared (`fields.doc`, read by the configuration reference); `loading` builds
the whole `Config` from a file, `checks` holds the error and the checks the sections share. `__post_init__` checks
that fields fit together. Functions take the section they need (`ModelConfig`, ...), never a dict of everything.
"""

from seg.config.analyze import CAM_METHODS, AnalyzeConfig
from seg.config.checks import AUTO, ConfigError, did_you_mean
from seg.config.crossval import CrossvalConfig
from seg.config.data import COLOR_MODES, DATA_LAYOUTS, NORMALIZATIONS, DataConfig
from seg.config.infer import INFER_PRECISIONS, InferConfig
from seg.config.loading import Config, flatten, from_dict, load_config, to_dict
from seg.config.model import (
    ACTS,
    ATTENTION_MODULES,
    DECODER_MERGES,
    GATE_COEFFICIENTS,
    GATE_LEVELS,
    GATE_MODES,
    NORMS,
    SELF_ATTENTION,
    ModelConfig,
)
from seg.config.seam import MAX_CHOSEN_SCALES, SeamConfig
from seg.config.train import DEFAULT_EPOCHS, OPTIMIZERS, PRECISIONS, SCHEDULES, SUPERVISIONS, AugmentConfig, TrainConfig

__all__ = [
    "ACTS",
    "ATTENTION_MODULES",
    "AUTO",
    "CAM_METHODS",
    "COLOR_MODES",
    "DATA_LAYOUTS",
    "DECODER_MERGES",
    "DEFAULT_EPOCHS",
    "GATE_COEFFICIENTS",
    "GATE_LEVELS",
    "GATE_MODES",
    "INFER_PRECISIONS",
    "MAX_CHOSEN_SCALES",
    "NORMALIZATIONS",
    "NORMS",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "SELF_ATTENTION",
    "SUPERVISIONS",
    "AnalyzeConfig",
    "AugmentConfig",
    "Config",
    "ConfigError",
    "CrossvalConfig",
    "DataConfig",
    "InferConfig",
    "ModelConfig",
    "SeamConfig",
    "TrainConfig",
    "did_you_mean",
    "flatten",
    "from_dict",
    "load_config",
    "to_dict",
]
