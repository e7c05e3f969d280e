"""Independent units of an experiment (warm starts, arms) side by side in worker processes.

The tiny model is too small to keep two cores busy: its matmuls are small and much of a step is
Python. Two single-threaded processes then get through more units per hour than one process with
two threads, though each unit runs slower (`bench/parallel_arms.py` measures it; in the 5-seed
reproduce an RL arm took about 6 min on 1 thread against 3.6 on 2, a warm start 16.4 min per seed
against 20). `jobs=1` runs every unit in this process with
torch's default threads, exactly as a plain loop would; `jobs=N` starts N spawned workers with
`threads_per_job(N)` torch threads each. A unit's result depends on its thread count (floating-point
reduction order), never on which worker ran it or when: every unit seeds what it samples (trainers through their
seed, `generate_completions(seed=...)` for DPO's pairs and the gate).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

U = TypeVar("U")
R = TypeVar("R")

log = logging.getLogger(__name__)


def threads_per_job(jobs: int) -> int:
    """Torch threads of each of `jobs` workers: this process's threads (the cores it may use, or
    `OMP_NUM_THREADS`) shared out, at least one each."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def _exit_with(parent: int) -> None:
    """End this worker when the process that started it is gone: a killed run leaves no worker
    training on into the folders a rerun writes."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    import torch

    from agrl.cli import configure_logging

    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    # One bar per worker would interleave on the same terminal: the parent shows one over the units.
    os.environ["TQDM_DISABLE"] = "1"
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    configure_logging()


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor | None]:
    """`jobs` spawned worker processes with `threads_per_job(jobs)` torch threads each, shut down on
    exit; None for `jobs=1` (`map_jobs` then runs every unit in this process)."""
    if jobs < 1:
        raise ValueError(f"jobs: expected at least 1, got {jobs}")
    if jobs == 1:
        yield None
        return
    threads = threads_per_job(jobs)
    log.info("%d worker processes, %d torch thread(s) each", jobs, threads)
    context = multiprocessing.get_context("spawn")  # fork after torch has started its threads can hang
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(threads, os.getpid())
    ) as pool:
        yield pool


def map_jobs(
    fn: Callable[[U], R], units: Sequence[U], pool: ProcessPoolExecutor | None, desc: str = "units"
) -> Iterator[tuple[int, R]]:
    """(index, fn(unit)) for every unit, in the order they finish (no pool: in order, in this
    process). With a pool, `fn` must be a module-level function and units and results picklable.
    The first failure cancels the units not started and is raised here."""
    if pool is None:
        for index, unit in enumerate(units):
            yield index, fn(unit)
        return
    with tqdm(total=len(units), desc=desc, unit="unit") as bar:
        pending = {pool.submit(fn, unit): index for index, unit in enumerate(units)}
        while pending:
            # FIRST_COMPLETED, not FIRST_EXCEPTION: that one returns only once every unit is done when
            # none fails, so no result (nor the partial files written from them) came before the last
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                bar.update()
                yield index, future.result()
