"""Batch inference as a pipeline: while the network predicts case n (in the calling thread), a reader thread reads
and preprocesses the next cases and writer threads restore and write the previous ones (`seg.infer.process`'s
three stages). Queues are bounded, so memory is that of `read_ahead` waiting inputs and `writers` predictions being
written, whatever the batch's length. Every case's record comes back in the order the cases were given; a case's
failure is its record's one-line error (the batch goes on); a bug in our code is raised with its traceback.

numpy, scipy, zlib and torch release the GIL for their work, so threads overlap it; with `read_ahead` 0 and
`writers` 0 the stages run one after the other in the calling thread, as a plain loop would."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from seg.infer.cases import CaseOutputs, InferCase
from seg.infer.label_files import Segments
from seg.infer.postprocess import Postprocessing
from seg.infer.predictor import EnsemblePredictor, Predictor
from seg.infer.process import Job, predict_case, read_case, write_case
from seg.infer.records import CaseRecord


class CasePipeline:
    def __init__(
        self,
        predictor: Predictor | EnsemblePredictor,
        outputs_of: Callable[[InferCase], CaseOutputs],
        overwrite: bool = False,
        postprocessing: Postprocessing | None = None,
        read_ahead: int = 1,
        writers: int = 1,
    ) -> None:
        model = predictor.model
        self.predictor, self.outputs_of, self.overwrite = predictor, outputs_of, overwrite
        self.read = lambda case: read_case(case, outputs_of(case), model, overwrite)
        segments, binary_255 = Segments.of(model), model.fingerprint.preprocessing.binary_255
        self.write = lambda job: write_case(job, segments, postprocessing, binary_255)
        self.read_ahead, self.writers = read_ahead, writers
        self.readers = ThreadPoolExecutor(1, "seg-read") if read_ahead > 0 else None
        self.writing = ThreadPoolExecutor(writers, "seg-write") if writers > 0 else None
        self.reads: deque[tuple[InferCase, Future[Job]]] = deque()
        self.writes: deque[Future[CaseRecord]] = deque()
        self.first_start: float | None = None
        self.last_end: float | None = None

    def run(self, cases: Sequence[InferCase]) -> Iterator[CaseRecord]:
        """Every case's record, in order, each as soon as it and the cases before it are written."""
        try:
            for i, case in enumerate(cases):
                self._read_ahead(cases, i)
                job = self._job(case)
                yield from self._written(block=False)
                self._submit_write(predict_case(job, self.predictor))
                yield from self._written(block=len(self.writes) > max(self.writers, 0))
            while self.writes:
                yield from self._written(block=True)
        finally:
            self.close()

    @property
    def seconds(self) -> float:
        """Wall time from the first case's read to the last case's written record."""
        return (self.last_end - self.first_start) if self.first_start and self.last_end else 0.0

    def close(self) -> None:
        for pool in (self.readers, self.writing):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _read_ahead(self, cases: Sequence[InferCase], i: int) -> None:
        if self.first_start is None:
            self.first_start = time.perf_counter()
        if self.readers is None:
            return
        queued = {c.case_id for c, _ in self.reads}
        for case in cases[i : i + 1 + self.read_ahead]:
            if case.case_id not in queued:
                self.reads.append((case, self.readers.submit(self.read, case)))

    def _job(self, case: InferCase) -> Job:
        if self.readers is None:
            return self.read(case)
        queued, future = self.reads.popleft()
        assert queued is case, "cases are read in the order they are predicted"
        return future.result()

    def _submit_write(self, job: Job) -> None:
        if self.writing is None:
            done: Future[CaseRecord] = Future()
            done.set_result(self.write(job))
            self.writes.append(done)
        else:
            self.writes.append(self.writing.submit(self.write, job))

    def _written(self, block: bool) -> Iterator[CaseRecord]:
        """Records of finished writes, oldest first; `block`: wait for the oldest one at least."""
        while self.writes and (block or self.writes[0].done()):
            record = self.writes.popleft().result()
            self.last_end = time.perf_counter()
            block = False
            yield record
