"""Container exits as asyncio futures, fed by the runtime's exit listener.

Why not a thread blocked in ``Runtime.wait_container`` per waiter: such a wait is registered
only once its thread runs, so the API could not tell the client "you are registered" (Docker's
``wait`` answers its headers at once, and the docker CLI starts the container only then; a
container that runs ``echo hi`` must not exit before the waiter is registered). Here a waiter
is registered on the event loop, synchronously, before the headers leave; the runtime calls the
listener (from its exit thread) after recording the exit and before an automatic removal, so the
exit code is never lost to ``--rm``. No thread is held while waiting.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class Exits:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future[int]]] = {}
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def listener(self, container_id: str, exit_code: int) -> None:
        """The runtime's exit listener (runs on the runtime's exit thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fire, container_id, exit_code)

    def close(self) -> None:
        """Cancel every waiter (the daemon is shutting down): nobody waits for an exit that
        this daemon will not see; nor for one asked after this."""
        self._closed = True
        for futures in list(self._waiters.values()):
            for future in list(futures):
                future.cancel()

    def _fire(self, container_id: str, exit_code: int) -> None:
        for future in self._waiters.pop(container_id, set()):
            if not future.done():
                future.set_result(exit_code)

    def next_exit(self, container_id: str) -> asyncio.Future[int]:
        """A future for the container's next exit code. Cancel it when no longer
        interested."""
        assert self._loop is not None, "bind() the event loop first"
        future: asyncio.Future[int] = self._loop.create_future()
        if self._closed:
            future.cancel()
            return future
        self._waiters.setdefault(container_id, set()).add(future)

        def forget(done: asyncio.Future[int]) -> None:
            self._waiters.get(container_id, set()).discard(done)
            if not self._waiters.get(container_id):
                self._waiters.pop(container_id, None)

        future.add_done_callback(forget)
        return future


EXITS = web.AppKey("exits", Exits)
