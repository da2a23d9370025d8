"""What every benchmark measures the same way: the median time of a step, counted FLOP, the peak resident memory
of a process, and running each measurement in a fresh process so that memory peaks and thread pools do not mix."""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
import traceback
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def autocast(precision: str):
    """bf16 autocast on the CPU for "bfloat16", nothing for "float32"."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")


# ------------------------------------------------------------------------------------- memory probes


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


class PeakRSS:
    """Peak RSS increase (MiB) since construction: VmHWM after a reset, else ru_maxrss."""

    def __init__(self):
        self.exact = _reset_peak()
        self.base = _status_kib("VmRSS") if self.exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def increase_mib(self) -> float:
        peak = _status_kib("VmHWM") if self.exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(0, peak - self.base) / 1024


# ---------------------------------------------------------------------------------------- measuring


def median_time(step: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def counted_gflop(fn: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _child(conn, fn, fn_args) -> None:
    try:
        conn.send(("ok", fn(*fn_args)))
    except BaseException:  # noqa: BLE001 -- the parent prints the child's traceback
        conn.send(("error", traceback.format_exc()))
    conn.close()


def in_fresh_process(fn, *fn_args):
    """Run fn in a forked child (imports shared, memory and thread pools its own); return its result."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, fn_args))
    proc.start()
    child.close()
    status, result = parent.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__}{fn_args[:3]} failed in the child:\n{result}")
    return result
