"""Progress over the cases of a batch (`seg infer`, `seg analyze`): on a terminal a bar (cases done, ETA) under
the per-case lines; elsewhere (a DVC stage, CI, nohup) each case's line ends with `[done/total, ETA m:ss]`, since
a bar's carriage returns make an unreadable log. Imports nothing of seg."""

from __future__ import annotations

import os
import sys
import time


def wants_bar(stream=None) -> bool:
    """A terminal, and SEG_PROGRESS not 0."""
    stream = stream or sys.stdout
    return bool(int(os.environ.get("SEG_PROGRESS", "1"))) and hasattr(stream, "isatty") and stream.isatty()


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class CaseProgress:
    """`done(line)` once per finished case; `close()` at the end."""

    def __init__(self, total: int, what: str, stream=None):
        self.total, self.count, self.started = total, 0, time.monotonic()
        self.stream = stream
        self.bar = None
        if total > 1 and wants_bar(stream):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=what, unit="case", file=stream or sys.stdout, leave=False, dynamic_ncols=True
            )

    def eta(self) -> float:
        elapsed = time.monotonic() - self.started
        return elapsed / self.count * (self.total - self.count) if self.count else float("nan")

    def done(self, line: str, stream=None, tag: bool = True) -> None:
        """Print the case's line (`tag`: with the count and ETA where there is no bar)."""
        self.count += 1
        out = stream or self.stream or sys.stdout
        if self.bar is not None:
            self.bar.write(line, file=out)
            self.bar.update()
        elif self.total > 1 and tag:
            print(f"{line}  [{self.count}/{self.total}, ETA {clock(self.eta())}]", file=out, flush=True)
        else:
            print(line, file=out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
