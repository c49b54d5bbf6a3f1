"""The containers' records: found by id, name or id prefix, kept in the store, each with a lock
for its lifecycle, and the notices that waiters on exits and removals wait for.

``lock`` guards the table and the records in it and is held briefly: a record is changed under
it, so a copy taken under it (``copy``, ``containers``) never shows half a change. ``changed``
(on the same lock) wakes waiters on exits and removals. The lock of one container
(``lock_for``) serialises its lifecycle operations and may be held for long (a start, a
teardown); take it before ``lock``, never the other way round.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.runtime.model import Container
from cnm.runtime.names import generate_name
from cnm.store.api import Store

PREFIX = "container/"
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


class ContainerTable:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._containers: dict[str, Container] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._exits: dict[str, int] = {}  # exits seen per container: wakes next-exit waiters
        self._removed: dict[str, int] = {}  # removed container -> its last exit code

    def load(self) -> list[Container]:
        """The records in the store, now the table's."""
        found = [Container.from_json(e.value) for e in self._store.list(PREFIX)]
        with self.lock:
            self._containers = {c.id: c for c in found}
        return found

    # ------------------------------------------------------------------ lookups

    def containers(self, all: bool = False) -> list[Container]:
        """Copies, newest first; the running ones only unless ``all``."""
        with self.lock:
            found = [c for c in self._containers.values() if all or c.state.running]
            return [copy.deepcopy(c) for c in sorted(found, key=lambda c: c.created, reverse=True)]

    def linking_to(self, container_id: str) -> list[Container]:
        """Copies of the running containers with a legacy link to ``container_id``."""
        with self.lock:
            return [
                copy.deepcopy(c)
                for c in self._containers.values()
                if c.state.running and container_id in c.links.values()
            ]

    def copy(self, ref: str) -> Container:
        with self.lock:
            return copy.deepcopy(self.resolve(ref))

    def resolve(self, ref: str) -> Container:
        """The record itself (not a copy) of an id, a name (with or without its slash) or an
        unambiguous id prefix."""
        with self.lock:
            if ref in self._containers:
                return self._containers[ref]
            name = ref.removeprefix("/")
            for container in self._containers.values():
                if container.name == name:
                    return container
            matches = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def current(self, container_id: str) -> Container:
        """The record of an id, if the container still exists."""
        with self.lock:
            container = self._containers.get(container_id)
        if container is None:
            raise NotFound(f"No such container: {container_id}")
        return container

    def lock_for(self, container_id: str) -> threading.Lock:
        with self.lock:
            return self._locks.setdefault(container_id, threading.Lock())

    def sandbox_borrowed(self, container: Container) -> bool:
        """Another running container shares this one's sandbox (network mode container:)."""
        with self.lock:
            return any(
                other.state.running and other.sandbox_id == container.sandbox_id
                for other in self._containers.values()
                if other.id != container.id
            )

    # ------------------------------------------------------------------ changes

    def add(self, name: str | None, make: Callable[[str], Container]) -> Container:
        """Record the container ``make`` builds for its name: ``name``, or a generated one.
        The name is taken under the lock, so two creates never get the same."""
        with self.lock:
            if name is None:
                taken = {c.name for c in self._containers.values()}
                retry = 0
                while (chosen := generate_name(retry)) in taken:
                    retry += 1
            else:
                self.check_name_free(name)
                chosen = name
            container = make(chosen)
            self._store.put(PREFIX + container.id, container.to_json(), expect_revision=0)
            self._containers[container.id] = container
            self._exits[container.id] = 0
        return container

    def check_name_free(self, name: str) -> None:
        with self.lock:
            for other in self._containers.values():
                if other.name == name:
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by container '
                        f'"{other.id}". You have to remove (or rename) that container to be able '
                        "to reuse that name."
                    )

    def save(self, container: Container) -> None:
        self._store.put(PREFIX + container.id, container.to_json())

    def remove(self, container_id: str, remove_files: Callable[[], None]) -> None:
        """Forget a container. Its record leaves the store first (after a crash only files
        are left, which the next start removes), then ``remove_files`` runs, then the table
        forgets it and removal waiters wake."""
        self._store.delete(PREFIX + container_id)
        remove_files()
        with self._changed:
            container = self._containers.pop(container_id)
            self._exits.pop(container_id, None)
            self._removed[container_id] = container.state.exit_code
            self._locks.pop(container_id, None)
            self._changed.notify_all()

    # ------------------------------------------------------------------ exits

    def exits_seen(self, container_id: str) -> int:
        with self.lock:
            return self._exits.get(container_id, 0)

    def record_exit(self, container_id: str) -> None:
        with self._changed:
            self._exits[container_id] = self._exits.get(container_id, 0) + 1
            self._changed.notify_all()

    def await_exit(self, container_id: str, seen: int, timeout: float | None) -> bool:
        """Until the container exited after its ``seen``-th exit, or was removed."""
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    self._exits.get(container_id, 0) > seen or container_id not in self._containers
                ),
                timeout,
            )

    def wait(self, ref: str, condition: str, timeout: float | None) -> int:
        """Block until ``condition`` holds and return the exit code; TimeoutError after
        ``timeout`` seconds."""
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        container_id = self.resolve(ref).id
        with self._changed:
            seen = self._exits.get(container_id, 0)

            def done() -> bool:
                container = self._containers.get(container_id)
                if container is None:
                    return True
                if condition == "removed":
                    return False
                if condition == "next-exit":
                    return self._exits.get(container_id, 0) > seen
                return not container.state.running

            if not self._changed.wait_for(done, timeout):
                raise TimeoutError(f"container {container_id} did not reach {condition}")
            container = self._containers.get(container_id)
            if container is None:
                return self._removed.get(container_id, 0)
            return container.state.exit_code
