"""Run :meth:`Context.map` chunks as Dask tasks (``--executor dask`` / ``dask://HOST:PORT``).

The per-item work that goes through ``Context.map`` is distributed (mask coding, PNG decode
and encode, point clouds, per-file writers), and so are whole shards of a source that its
reader lists in parts (``converters/sharded.py``); results come back in order, so the
output is byte-identical to one process. Workers write the files of their items into the
engine's staging folder: with an existing scheduler, every worker must see that folder (run
the workers on this machine, or stage on a shared filesystem). Media of a remote source are
fetched by each worker itself (``core.storage.cached_file``): every task carries the remote
sources and their storage options.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from annobridge.core.errors import FormatError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def run_chunk(fn: Callable[[T], R], chunk: list[T], sources: dict[str, Any] | None = None) -> list[R]:
    """One task: ``fn`` over a chunk of items, in order. ``sources`` (``core.storage.sources``
    of the driver) lets this worker fetch media of the driver's remote sources itself."""
    from annobridge.core import storage

    if sources:
        storage.remember_sources(sources)
    try:
        return [fn(x) for x in chunk]
    finally:
        storage.drop_media()  # what this task fetched for itself


STRAGGLERS = 60
"""Seconds a failed conversion waits for its tasks running on a scheduler it does not own."""


class DaskRunner:
    """A Dask client (and, for ``"dask"``, the ``LocalCluster`` it owns) for one conversion.

    Args:
        executor: ``"dask"`` starts a ``LocalCluster`` of ``workers`` single-threaded worker
            processes on 127.0.0.1 (no dashboard); ``"dask://HOST:PORT"`` connects to a running
            scheduler (``tcp://`` and ``tls://`` addresses are taken as they are too).
        workers: worker processes of the local cluster.

    Raises:
        FormatError: Dask is not installed, the executor is unknown, or the scheduler cannot
            be reached.
    """

    def __init__(self, executor: str, workers: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise FormatError(f"--executor {executor} needs Dask distributed, which is not installed",
                              fix="pip install 'annobridge[dask]'") from exc
        self.cluster: Any = None
        self.futures: list[Any] = []
        if executor == "dask":
            self.cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)
        elif executor.startswith(("dask://", "tcp://", "tls://")):
            address = "tcp://" + executor[len("dask://"):] if executor.startswith("dask://") else executor
            try:
                host, _, port = address.split("://", 1)[1].rpartition(":")
                socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()  # refused: fail now
                self.client = Client(address, timeout="10s")
            except (OSError, ValueError) as exc:
                raise FormatError(f"cannot reach the Dask scheduler at {address}: {exc}",
                                  fix="start one with `dask scheduler` (and `dask worker ADDRESS`), "
                                  "or use --executor dask for a local cluster") from exc
        else:
            raise FormatError(f"unknown executor {executor!r}",
                              fix="use process, dask, or dask://HOST:PORT")
        n = len(self.client.scheduler_info().get("workers", {})) or max(workers, 1)
        self.window = 4 * n
        logger.info("running per-item work on Dask (%s, %d worker(s))", self.client.scheduler.address, n)

    def submit(self, fn: Callable[[T], R], chunk: list[T]) -> Any:
        """One chunk as one task; ``.result()`` re-raises the worker's error (naming the item)."""
        from annobridge.core import storage

        future = self.client.submit(run_chunk, fn, chunk, storage.sources(), pure=False)
        self.futures.append(future)
        if len(self.futures) > 4 * self.window:
            self.futures = [f for f in self.futures if not f.done()]
        return future

    def close(self, cancel: bool = False) -> None:
        """Close the client and the own cluster; after a failure (``cancel``) stop the tasks first.

        Closing an own ``LocalCluster`` stops its workers. The workers of a scheduler this
        conversion does not own cannot be stopped: a task already running there finishes even
        when cancelled, and may still write into the staging folder the engine removes next.
        Those in flight (at most :attr:`window` chunks) are waited for, up to
        :data:`STRAGGLERS` seconds, before the rest are cancelled.
        """
        try:
            if cancel and self.futures:
                if self.cluster is None:
                    from distributed import wait

                    try:
                        wait(self.futures, timeout=STRAGGLERS)
                    except TimeoutError:
                        logger.warning("Dask tasks still running after %d s; they may leave files in the "
                                       "staging folder", STRAGGLERS)
                self.client.cancel(self.futures)
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
