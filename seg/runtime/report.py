"""`python -m seg.runtime.report`: the machine and what `auto` resolves to on it for the default network
(params.yaml's model at a 32x48x32 patch, training batch 4), the lines `.ci/run` prints first."""

from __future__ import annotations

import os
import sys
import tempfile

import torch


def main() -> int:
    from seg.config import ModelConfig, TrainConfig
    from seg.models import build_model
    from seg.runtime import describe_machine, threads_per_process, tune_inference, tune_training
    from seg.runtime.tune_cache import model_key

    os.environ.setdefault("SEG_CACHE_DIR", tempfile.mkdtemp(prefix="seg-autotune-"))  # a fresh measurement
    torch.set_num_threads(threads_per_process(TrainConfig().num_threads))
    cfg = ModelConfig()
    net = build_model(cfg)
    patch = (32, 48, 32)
    print(f"machine: {describe_machine().line()}")
    print(
        f"train (auto, batch 4, {'x'.join(map(str, patch))}): "
        f"{tune_training(net, patch, cfg.in_channels, 4, config_key=model_key(cfg)).describe()}"
    )
    print(f"infer (auto): {tune_inference(net, patch, cfg.in_channels, config_key=model_key(cfg)).describe()}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
