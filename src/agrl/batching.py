"""Micro-batching across requests, with a bounded queue: what lets one model serve many clients.

Requests wait in a FIFO queue; one worker takes the oldest and every queued request with the same
options (early stop, threshold) while the batch has room (`max_batch` products), runs the model once
on all of them in a worker thread, and hands each request its own results. Before it runs, it waits
for company, at most `max_wait_s` after the later of the oldest request's arrival and the end of
the previous batch, and only while fewer requests have arrived since that batch ended than it
answered (before the first batch, for as long as allowed). The clients a batch answers come back a
few milliseconds after it ends: a worker that took only what was queued at that instant would split
them into two half-size batches for good, so it waits for them; and a lone client, whose next
request is its own return, does not wait for company that never comes. A full queue refuses new requests at once (`QueueFull`: the server
answers 503 with Retry-After) instead of letting latency grow without bound; a request whose
future was cancelled — its client went away or its timeout passed — is dropped before it is run,
and a running batch all of whose requests are cancelled is stopped (`Run`'s `abandoned`).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool

# (records, options, abandoned) -> one result per record; `abandoned()` is True once every request of
# the batch has gone (client left, timeout), so a long batch can stop instead of finishing for nobody.
Run = Callable[[list[dict], Hashable, Callable[[], bool]], list[dict]]


class QueueFull(Exception):
    """The queue holds `max_queue` requests: come back after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"queue full; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Pending:
    records: list[dict]
    options: Hashable
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """What the worker has done (read by /metrics and /ready)."""

    batches: int = 0
    products: int = 0
    dropped: int = 0  # requests cancelled before their batch ran, or with it when it was stopped
    stopped: int = 0  # batches stopped mid-way because every request in them was cancelled
    last_batch_s: float = 0.0
    sizes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))


class MicroBatcher:
    def __init__(
        self,
        run: Run,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        coalesce: bool = True,
        on_batch: Callable[[int], object] | None = None,
    ):
        """`coalesce=False` runs one request per batch: the one-request-at-a-time server, for comparison.
        `on_batch` is called with the product count of every batch run (a metrics histogram)."""
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(
                f"micro-batching needs max_batch >= 1, max_queue >= 1, max_wait_s >= 0; "
                f"got {max_batch}, {max_queue}, {max_wait_s}"
            )
        self.run, self.max_batch, self.max_wait_s, self.max_queue = run, max_batch, max_wait_s, max_queue
        self.coalesce, self.on_batch = coalesce, on_batch
        self.queue: collections.deque[Pending] = collections.deque()
        self.stats = BatchStats()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._free_at = 0.0  # when the last batch ended (monotonic): the wait for company starts there
        # per options: when their last batch ended and how many live requests it answered, the
        # company the next batch of those options waits for (none known before their first batch, or
        # after one stopped for nobody: then it waits as long as allowed)
        self._answered: dict[Hashable, tuple[float, int]] = {}

    @property
    def depth(self) -> int:
        return len(self.queue)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained: batches ahead x the last batch's time."""
        batches = math.ceil(max(1, self.depth) * 1.0 / max(1, self.max_batch))
        return max(1, math.ceil(batches * max(self.stats.last_batch_s, 0.1)))

    def submit(self, records: Sequence[dict], options: Hashable) -> asyncio.Future:
        """Queue one request; its future resolves to its results (cancel it to give up)."""
        if self.depth >= self.max_queue:
            raise QueueFull(self.retry_after())
        future = asyncio.get_running_loop().create_future()
        self.queue.append(Pending(list(records), options, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._loop())
        self._wake.set()
        return future

    def _take(self, first: Pending) -> list[Pending]:
        """`first` plus queued requests with its options while they fit, oldest first."""
        batch, size = [first], len(first.records)
        for item in list(self.queue) if self.coalesce else []:
            if item.options == first.options and size + len(item.records) <= self.max_batch:
                self.queue.remove(item)
                batch.append(item)
                size += len(item.records)
        return batch

    def _live(self, items: list[Pending]) -> list[Pending]:
        live = [p for p in items if not p.future.done()]
        self.stats.dropped += len(items) - len(live)
        return live

    async def _loop(self) -> None:
        while True:
            while not self.queue:
                self._wake.clear()
                await self._wake.wait()
            first = self.queue.popleft()
            if first.future.done():  # cancelled while it waited: never judged
                self.stats.dropped += 1
                continue
            # Wait (bounded) for company, unless the batch is already full or waiting is off.
            deadline = max(first.queued_at, self._free_at) + self.max_wait_s
            while (
                self.coalesce
                and self.max_wait_s
                and time.monotonic() < deadline
                and self._room(first) > 0
                and self._awaited(first)
            ):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11 on, not in 3.10
                    break
            batch = self._live(self._take(first))
            if not batch:
                continue
            records = [r for p in batch for r in p.records]
            started = time.monotonic()

            def abandoned(batch: list[Pending] = batch) -> bool:
                return all(p.future.done() for p in batch)

            try:
                results = await run_in_threadpool(self.run, records, first.options, abandoned)
            except Exception as exc:  # every request of the batch gets the error
                if abandoned():  # stopped for nobody: nothing was delivered, nothing was judged in full
                    self.stats.stopped += 1
                    self.stats.dropped += len(batch)
                    self._answered.pop(first.options, None)
                    continue
                live = [p for p in batch if not p.future.done()]
                for p in live:
                    p.future.set_exception(exc)
                self._answered[first.options] = (time.monotonic(), len(live))
                continue
            finally:
                self._free_at = time.monotonic()
                self.stats.last_batch_s = self._free_at - started
            self.stats.batches += 1
            self.stats.products += len(records)
            self.stats.sizes.append(len(records))
            if self.on_batch is not None:
                self.on_batch(len(records))
            start, answered = 0, 0
            for p in batch:
                if not p.future.done():  # a request cancelled while its batch ran will not come back
                    p.future.set_result(results[start : start + len(p.records)])
                    answered += 1
                start += len(p.records)
            self._answered[first.options] = (self._free_at, answered)

    def _awaited(self, first: Pending) -> bool:
        """Whether fewer live requests with `first`'s options (itself included) have arrived since the
        last batch of those options ended than it answered; True when none is known."""
        if first.options not in self._answered:
            return True
        ended, answered = self._answered[first.options]
        returned = sum(
            p.queued_at >= ended and not p.future.done()
            for p in (first, *self.queue)
            if p.options == first.options
        )
        return returned < answered

    def _room(self, first: Pending) -> int:
        queued = sum(len(p.records) for p in self.queue if p.options == first.options and not p.future.done())
        return self.max_batch - len(first.records) - queued

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
