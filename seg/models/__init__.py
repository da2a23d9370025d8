"""Networks: dimension-generic attention U-Nets, gates and attention modules. Of seg they import only
`seg.config` (`ModelConfig`, its option names and `did_you_mean`)."""

from seg.models.attention import CBAM, SCSE, SqueezeExcitation, build_attention
from seg.models.build import build_model
from seg.models.gates import AttentionGate, MultiHeadAttentionGate
from seg.models.unet import AttentionUNet, UNetOutput

__all__ = [
    "CBAM",
    "SCSE",
    "AttentionGate",
    "AttentionUNet",
    "MultiHeadAttentionGate",
    "SqueezeExcitation",
    "UNetOutput",
    "build_attention",
    "build_model",
]
