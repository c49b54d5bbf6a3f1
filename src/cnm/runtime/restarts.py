"""Restart policies, as Docker's restart manager applies them (moby restartmanager).

After a container's process ends, its policy decides: ``always`` restarts it, ``unless-stopped``
unless a user stopped it, ``on-failure[:N]`` if it exited non-zero (at most N times, counted
since the last start by a user: the container's ``RestartCount``, which that start sets back
to 0). The restart waits a back-off: 100 ms, doubled after each
restart up to one minute, back to 100 ms once a run lasted 10 seconds. Meanwhile the container
is ``restarting`` (inspect shows ``Restarting: true``). A stop or a kill by a user cancels the
policy until the container is started again (Docker's ExitOnNext; a kill with another signal
than a configured stop signal does not), and so does a removal.

When the daemon starts, a container that is not running is started if its policy says so:
``always`` whatever stopped it, ``unless-stopped`` if no user did, ``on-failure`` if its last
exit code was not 0 and it has restarts left, even after a user's stop (Docker's ShouldRestart
at start-up, quirks included); that start counts in ``RestartCount``, as in dockerd 20.10.

The back-off lives in memory, as Docker's does: a daemon restart begins it anew (the count is
the container's record). Timers run on threads of their own and call the runtime back; the runtime decides under
the container's lock whether the restart is still due.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cnm.runtime.model import Container

INITIAL_DELAY_S = 0.1
MAX_DELAY_S = 60.0
RESET_AFTER_S = 10.0


@dataclass
class _Backoff:
    delay: float = 0.0


class RestartManager:
    def __init__(self, restart: Callable[[str], None]) -> None:
        self._restart = restart
        self._lock = threading.Lock()
        self._state: dict[str, _Backoff] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._firing: dict[str, threading.Thread] = {}  # fired, waiting for the container
        self._closed = False

    def reset(self, container_id: str) -> None:
        """A user started the container: the back-off starts again (and the runtime sets the
        count back to 0)."""
        self.cancel(container_id)
        with self._lock:
            self._state.pop(container_id, None)

    def decide(self, container: Container, exit_code: int, ran_s: float) -> float | None:
        """After an exit: the delay before the restart, or None for no restart."""
        policy = container.host_config.restart_policy
        if policy.name == "no" or container.state.manually_stopped:
            return None
        with self._lock:
            state = self._state.setdefault(container.id, _Backoff())
            if ran_s >= RESET_AFTER_S:
                state.delay = 0.0
            state.delay = INITIAL_DELAY_S if state.delay == 0 else min(state.delay * 2, MAX_DELAY_S)
            if policy.name == "on-failure" and not _retry_left(container, exit_code):
                return None
            return state.delay

    def schedule(self, container_id: str, delay: float) -> None:
        timer = threading.Timer(delay, self._fire, args=(container_id,))
        timer.daemon = True
        timer.name = f"cnm-restart-{container_id[:12]}"
        with self._lock:
            if self._closed:
                return
            old = self._timers.pop(container_id, None)
            self._timers[container_id] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _fire(self, container_id: str) -> None:
        current = threading.current_thread()
        with self._lock:
            if self._closed or self._timers.get(container_id) is not current:
                return
            del self._timers[container_id]
            self._firing[container_id] = current
        self._restart(container_id)

    def claim(self, container_id: str) -> bool:
        """From the restart, under the container's lock: whether it is still wanted. A stop,
        kill or removal that took the lock first cancelled it (Docker's canceled restart)."""
        with self._lock:
            if self._firing.get(container_id) is not threading.current_thread():
                return False
            del self._firing[container_id]
            return True

    def cancel(self, container_id: str) -> bool:
        """Drop a pending restart, also one that fired and waits for the container; whether
        there was one."""
        with self._lock:
            timer = self._timers.pop(container_id, None)
            firing = self._firing.pop(container_id, None)
        if timer is not None:
            timer.cancel()
        return timer is not None or firing is not None

    def forget(self, container_id: str) -> None:
        self.reset(container_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, {}
            self._firing.clear()
        for timer in timers.values():
            timer.cancel()


def due_at_start(container: Container) -> bool:
    """Whether a container that is not running is started with the daemon (see the note)."""
    policy = container.host_config.restart_policy.name
    if policy == "always":
        return True
    if policy == "unless-stopped":
        return not container.state.manually_stopped
    if policy == "on-failure":  # Docker's rule, whoever stopped it
        return _retry_left(container, container.state.exit_code)
    return False


def _retry_left(container: Container, exit_code: int) -> bool:
    """on-failure[:N]: a failure, and fewer than N restarts since the last start by a user
    (the container's RestartCount, which that start sets back to 0)."""
    limit = container.host_config.restart_policy.maximum_retry_count
    return exit_code != 0 and (not limit or container.restart_count < limit)
