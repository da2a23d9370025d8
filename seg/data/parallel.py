"""Map a function over cases in worker processes with a progress bar; results come back in input order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

R = TypeVar("R")


def map_cases(fn: Callable[[Any], R], items: Sequence[Any], workers: int, desc: str, progress: bool = True) -> list[R]:
    """`[fn(x) for x in items]` over `workers` processes (0: in this process, for debugging and tiny inputs).

    Processes are spawned, not forked: forking a parent that holds torch or BLAS threads can deadlock.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="case", disable=not progress, leave=False)
    try:
        if workers == 0 or len(items) <= 1:
            out = []
            for x in items:
                out.append(fn(x))
                bar.update()
            return out
        results: list[Any] = [None] * len(items)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
            futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                bar.update()
        return results
    finally:
        bar.close()
