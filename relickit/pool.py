"""A process pool that outlives a deadlocked worker.

ViZDoom runs each engine as a child process of the worker that drives it, and the two talk through shared-memory
queues; once in a while both end up waiting on each other for ever (futex waits, no CPU). A plain
`multiprocessing.Pool.imap_unordered` then never returns, and neither does dataset generation or the notebook that
called it. `imap_guarded` gives the same results, but when no task has finished for `stall_timeout` seconds it
kills the workers and everything they started (SIGKILL: a worker stuck in C never runs a Python SIGTERM handler)
and runs the tasks without a result again in a fresh pool, up to `retries` times. A worker that dies (a crash in
C, the OOM killer) breaks the pool the same way and is handled the same way: its tasks run again in a fresh pool.

    for key, result in imap_guarded(fn, {key: task, ...}, workers=4, stall_timeout=180, initializer=init):
        ...
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping


class StalledError(TimeoutError):
    """The pool stalled, or lost a worker, more times than it was allowed to restart."""


def descendants(pid: int) -> list[int]:
    """The pids of a process's children, grandchildren, ... (from Linux's /proc; an empty list elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except (OSError, IndexError):
            continue  # gone while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _kill(pool: ProcessPoolExecutor) -> None:
    """SIGKILL a pool's workers and their descendants (deepest first), then shut it down. (multiprocessing.Pool would
    hang here: a worker killed while waiting for a task keeps its queue's lock; the executor notices dead workers.)"""
    pids = list(pool._processes)  # noqa: SLF001 (the workers; the executor keeps no public list)
    for pid in [d for p in pids for d in reversed(descendants(p))] + pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pool.shutdown(wait=True, cancel_futures=True)


def imap_guarded(fn: Callable[[Any], Any], tasks: Mapping[Hashable, Any], workers: int, stall_timeout: float,
                 retries: int = 2, initializer: Callable[[], None] | None = None) -> Iterator[tuple[Hashable, Any]]:
    """Yield (key, fn(task)) for every item of `tasks` as they finish, from `workers` spawned processes.

    No result for `stall_timeout` seconds counts as a stall, and a worker's death as a crash: either way the pool is
    killed and the unfinished tasks go to a new one; after `retries` restarts a StalledError is raised. `fn` must be
    picklable (a module-level function) and safe to run again on a task whose first run was killed."""
    if stall_timeout <= 0:
        raise ValueError(f"stall_timeout must be positive seconds, got {stall_timeout}.")
    left = dict(tasks)
    for _ in range(retries + 1):
        if not left:
            return
        pool = ProcessPoolExecutor(min(workers, len(left)), mp.get_context("spawn"), initializer)
        failure = ""
        try:
            pending = {pool.submit(fn, task): key for key, task in left.items()}
            while pending and not failure:
                done, _ = wait(pending, stall_timeout, FIRST_COMPLETED)
                if not done:
                    failure = f"made no progress for {stall_timeout:g} s"
                for future in done:
                    key = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        failure = "lost a worker (it died without a Python error: a crash in C, or the OOM killer)"
                        break
                    yield key, result
                    del left[key]
        except BaseException:
            _kill(pool)
            raise
        if failure:
            _kill(pool)
        else:
            pool.shutdown(wait=True)  # workers exit normally and run their finalizers
    if left:
        raise StalledError(f"{len(left)} task(s) left: the pool {failure}, in {retries + 1} pools in a row; run with "
                           "workers=1 to see where it hangs or crashes, or raise stall_timeout if a task is simply "
                           "that slow.")
