"""Speed settings chosen by timing the network on the machine it runs on, never by assuming the machine.

bfloat16 is several times faster than float32 on CPUs with AVX512-BF16 or AMX, and 2x to 85x slower on CPUs
without them (oneDNN emulates it on AVX512, and AVX2-only CPUs have no bf16 kernels at all): CPU flags alone do
not say which. So `precision: auto` times the network's own training step (forward + backward) or forward at its
patch size, for float32 and bfloat16, and takes the faster; `channels_last: auto` and `sw_batch_size: auto` are
timed the same way. On CUDA the precision follows a rule (bf16 where the GPU supports it, else fp16 with loss
scaling), and the layout and window batch are timed.

A measurement costs a few forward passes (well under a second for the default network on 2 cores) and is cached
per machine, torch version, network config, patch and batch in `$SEG_CACHE_DIR/autotune.json` (default
`~/.cache/seg`); an explicit setting is never overridden, only timed for the record.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from seg.runtime.machine import describe_machine
from seg.runtime.tune_cache import cache_key, cached, write_cache

AUTO = "auto"
PREFER_EXACT = 0.97  # bfloat16 is taken only where its time is below 97% of float32's: a tie keeps float32 exact
MAX_WINDOW_VOXELS = 2**22  # sw_batch_size candidates stop where a batch of windows would pass ~4M voxels
ABANDON_AFTER_S = 1.0  # see _seconds


@dataclass(frozen=True)
class TrainSettings:
    precision: str  # Lightning's name: "32", "bf16-mixed" or "16-mixed"
    channels_last: bool
    device: str  # "cpu" or "cuda"
    source: str  # measured | cached | rule (CUDA precision) ; explicit settings are marked "given" in `chosen_by`
    chosen_by: dict[str, str]  # setting -> "auto" or "given"
    step_seconds: float  # the chosen combination's forward + backward time for one batch
    timings: dict[str, float] = field(default_factory=dict)  # candidate label -> seconds per batch (inf: abandoned)

    def describe(self) -> str:
        return _describe(
            "training step",
            self.timings,
            self.source,
            self.chosen_by,
            {"precision": self.precision, "channels_last": self.channels_last},
        )


@dataclass(frozen=True)
class InferSettings:
    precision: str  # "32", "bf16" or "16"
    sw_batch_size: int
    device: str
    source: str
    chosen_by: dict[str, str]
    window_seconds: float  # the chosen combination's forward time per window
    timings: dict[str, float] = field(default_factory=dict)  # candidate label -> seconds per window

    def describe(self) -> str:
        return _describe(
            "forward per window",
            self.timings,
            self.source,
            self.chosen_by,
            {"precision": self.precision, "sw_batch_size": self.sw_batch_size},
        )


def _describe(what: str, timings: dict[str, float], source: str, chosen_by: dict[str, str], values: dict) -> str:
    picked = ", ".join(f"{k} {chosen_by[k]} -> {v}" for k, v in values.items())
    times = ", ".join(f"{k} {'abandoned' if math.isinf(s) else f'{s * 1000:.0f} ms'}" for k, s in timings.items())
    return f"{picked} ({source} on {describe_machine().line()}" + (f"; {what}: {times})" if times else ")")


# ------------------------------------------------------------------------------------------------ timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(step: Callable[[], None], device: torch.device, best_so_far: float) -> float:
    """The minimum of two timed calls after one warm-up call (kernel selection, allocation); a candidate
    whose warm-up alone takes 10x the best steady time so far plus a second is abandoned (inf) without further
    calls, so a CPU without bf16 kernels costs one slow call, not three (and a busy spell abandons nothing)."""
    start = time.perf_counter()
    step()
    _sync(device)
    if time.perf_counter() - start > 10 * best_so_far + ABANDON_AFTER_S:
        return math.inf
    times = []
    for _ in range(2):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def autocast(device: str | torch.device, precision: str):
    """The autocast context of a resolved precision (a no-op for float32)."""
    dtype = {"bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16, "16": torch.float16, "16-mixed": torch.float16}
    return torch.autocast(
        torch.device(device).type, dtype=dtype.get(precision, torch.float32), enabled=precision in dtype
    )


def _chosen_by(**requested) -> dict[str, str]:
    """Setting -> "auto" where it was left to the measurement, "given" where the config named a value."""
    return {name: AUTO if value == AUTO else "given" for name, value in requested.items()}


def _source(how: str, timings: dict) -> str:
    return "measured" if how == "measured" or len(timings) > 1 else how


def _generator(device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


def _layout(spatial_dims: int, channels_last: bool) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


def _faster(timings: dict, exact: str) -> str:
    """The fastest candidate; float32 candidates win ties within PREFER_EXACT."""
    best = min(timings, key=timings.get)
    exact_best = min((k for k in timings if k.startswith(exact)), key=timings.get, default=None)
    if exact_best is not None and timings[exact_best] * PREFER_EXACT <= timings[best]:
        return exact_best
    return best


def _precision_candidates(requested: str, device: torch.device, training: bool) -> tuple[list[str], str]:
    names = (
        {"bf16": "bf16-mixed", "16": "16-mixed", "32": "32"} if training else {"bf16": "bf16", "16": "16", "32": "32"}
    )
    if requested != AUTO:
        return [requested], "given"
    if device.type == "cuda":
        return [names["bf16"] if torch.cuda.is_bf16_supported() else names["16"]], "rule"
    return [names["32"], *([names["bf16"]] if describe_machine().onednn_bf16 else [])], "measured"


def resolve_device(accelerator: str) -> torch.device:
    """Where Lightning will run with `accelerator` (auto: CUDA when there is one)."""
    if accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def tune_training(
    net: nn.Module,
    patch_size: Sequence[int],
    in_channels: int,
    batch_size: int,
    precision: str = AUTO,
    channels_last: bool | str = AUTO,
    device: torch.device | str = "cpu",
    config_key: str = "",
) -> TrainSettings:
    """Precision and memory layout for training `net` on (batch_size, in_channels, *patch_size) batches."""
    device = torch.device(device)
    precisions, how = _precision_candidates(precision, device, training=True)
    layouts = [True, False] if channels_last == AUTO else [bool(channels_last)]
    chosen_by = _chosen_by(precision=precision, channels_last=channels_last)
    shape = (batch_size, in_channels, *patch_size)
    key = cache_key("train", device, config_key, shape, {"precision": precision, "channels_last": channels_last})
    entry = cached(key)
    if entry is not None:
        return TrainSettings(**{**entry, "source": "cached"})

    probe = copy.deepcopy(net).to(device).train()  # batch-norm statistics of the real network stay untouched
    x = torch.zeros(*shape, device=device).normal_(generator=_generator(device))  # the global stream is untouched
    timings: dict[str, float] = {}
    for p in precisions:
        for cl in layouts:
            layout = _layout(len(patch_size), cl)
            probe.to(memory_format=layout)
            xi = x.contiguous(memory_format=layout)

            def step(probe=probe, p=p, xi=xi) -> None:  # called right here, bound for clarity
                probe.zero_grad(set_to_none=True)
                with autocast(device, p):
                    out = probe(xi)
                out.float().square().mean().backward()

            timings[f"{p}{' channels-last' if cl else ''}"] = _seconds(
                step, device, min(timings.values(), default=math.inf)
            )
    del probe
    best = _faster(timings, "32")
    settings = TrainSettings(
        precision=best.split(" ")[0],
        channels_last=best.endswith("channels-last"),
        device=device.type,
        source=_source(how, timings),
        chosen_by=chosen_by,
        step_seconds=timings[best],
        timings=timings,
    )
    write_cache(key, asdict(settings))
    return settings


def _time_windows(
    net: nn.Module,
    patch_size: Sequence[int],
    in_channels: int,
    precisions: list[str],
    batches: list[int],
    device: torch.device,
) -> dict[str, float]:
    """Seconds per window of a forward pass, "<precision> x<windows per pass>" -> s, on a copy of `net`."""
    probe = copy.deepcopy(net).to(device).eval()
    timings: dict[str, float] = {}
    with torch.inference_mode():
        for p in precisions:
            for b in batches:
                x = torch.zeros(b, in_channels, *patch_size, device=device).normal_(generator=_generator(device))

                def forward(probe=probe, p=p, x=x) -> None:  # called right here, bound for clarity
                    with autocast(device, p):
                        probe(x)

                best_window = min(timings.values(), default=math.inf)
                timings[f"{p} x{b}"] = _seconds(forward, device, best_window * b) / b
    return timings


def tune_inference(
    net: nn.Module,
    patch_size: Sequence[int],
    in_channels: int,
    precision: str = AUTO,
    sw_batch_size: int | str = AUTO,
    device: torch.device | str = "cpu",
    config_key: str = "",
) -> InferSettings:
    """Precision and windows per forward pass for sliding-window inference with `net` at `patch_size`."""
    device = torch.device(device)
    precisions, how = _precision_candidates(precision, device, training=False)
    if sw_batch_size == AUTO:
        window = math.prod(patch_size) * in_channels
        batches = [b for b in (1, 2, 4) if b == 1 or b * window <= MAX_WINDOW_VOXELS]
    else:
        batches = [int(sw_batch_size)]
    chosen_by = _chosen_by(precision=precision, sw_batch_size=sw_batch_size)
    if len(precisions) * len(batches) == 1:  # nothing to choose: no timing
        return InferSettings(precisions[0], batches[0], device.type, how, chosen_by, math.nan, {})
    key = cache_key(
        "infer",
        device,
        config_key,
        (in_channels, *patch_size),
        {"precision": precision, "sw_batch_size": sw_batch_size},
    )
    entry = cached(key)
    if entry is not None:
        return InferSettings(**{**entry, "source": "cached"})

    timings = _time_windows(net, patch_size, in_channels, precisions, batches, device)
    best = _faster(timings, "32")
    p, b = best.split(" x")
    # a bigger window batch costs memory: it is taken only where it is measurably faster per window
    smaller = [k for k in timings if k.startswith(f"{p} x") and timings[k] * PREFER_EXACT <= timings[best]]
    if smaller:
        best = min(smaller, key=lambda k: int(k.split(" x")[1]))
        p, b = best.split(" x")
    settings = InferSettings(
        precision=p,
        sw_batch_size=int(b),
        device=device.type,
        source=_source(how, timings),
        chosen_by=chosen_by,
        window_seconds=timings[best],
        timings=timings,
    )
    write_cache(key, asdict(settings))
    return settings
