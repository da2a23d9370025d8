"""The machine a stage runs on, as people and caches need it: CPU model, torch's CPU capability, whether the
CPU runs bfloat16 natively, the cores this process may use, the GPU; and whether this process is the first of a
multi-process run on it."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or `taskset`'s limit, not the host's)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


def threads_per_process(num_threads: int | None, processes: int = 1) -> int:
    """`num_threads`, or (None) this process' share of the cores it may use when `processes` share them."""
    return num_threads if num_threads is not None else max(available_cores() // max(processes, 1), 1)


def is_rank_zero() -> bool:
    """The first process on this machine (LOCAL_RANK 0 as Lightning and torchrun set it, SLURM_LOCALID 0 under
    `srun`, or no launcher): the one that prints, tunes and writes a run's shared files, known before Lightning's
    trainer exists."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))) == 0


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), flags


@dataclass(frozen=True)
class Machine:
    cpu: str  # CPU model name
    capability: str  # torch.backends.cpu.get_cpu_capability(): the widest vector ISA torch's kernels use
    native_bf16: bool  # the CPU has bfloat16 arithmetic (AVX512-BF16 or AMX); oneDNN emulates it otherwise
    onednn_bf16: bool  # oneDNN offers bf16 kernels at all (True on AVX512 CPUs even without native bf16)
    cores: int  # cores this process may use
    gpu: str | None  # CUDA device 0's name, when there is one
    torch_version: str

    def line(self) -> str:
        bf16 = "native" if self.native_bf16 else ("emulated by oneDNN" if self.onednn_bf16 else "none")
        gpu = f", GPU {self.gpu}" if self.gpu else ", no GPU"
        return f"{self.cpu} ({self.capability}, bf16 {bf16}), {self.cores} cores{gpu}, torch {self.torch_version}"

    def key(self) -> str:
        """What a cached measurement is valid for: the same CPU and ISA, cores, GPU and torch."""
        return "|".join(
            map(str, (self.cpu, self.capability, self.native_bf16, self.cores, self.gpu, self.torch_version))
        )


@functools.cache
def describe_machine() -> Machine:
    model, flags = _cpuinfo()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(
        cpu=model,
        capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16=any(f in flags for f in NATIVE_BF16_FLAGS),
        onednn_bf16=onednn,
        cores=available_cores(),
        gpu=gpu,
        torch_version=torch.__version__,
    )


if __name__ == "__main__":  # `python -m seg.runtime.machine`: what .ci/run prints first
    print(describe_machine().line())
