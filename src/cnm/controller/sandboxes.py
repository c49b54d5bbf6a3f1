"""Sandboxes: a network namespace bind-mounted at ``<exec-root>/netns/<id>``, and its files.

A sandbox is made in this order: the namespace (loopback up), its file directory and files,
then the record. A host-network sandbox has no namespace of its own: its key is the host
namespace pinned at ``<exec-root>/netns/default``, as Docker pins it. Tearing a sandbox down,
endpoints included, is ``joins.py``'s business; this table only makes and forgets.

Adopted namespaces. A CNI runtime makes the container's namespace itself and hands cnm its path
(``SandboxOptions.netns_path``). cnm then bind-mounts that namespace at the sandbox's usual key,
so everything downstream (drivers, DNS listeners, restore's check that the key is a live mount)
works on the key as for any sandbox, and ``adopted_from`` records where it came from. Removing
the key unmounts cnm's mount only: the namespace belongs to the runtime, which keeps it while
its own mount or a process holds it, so cnm never ends a namespace it did not make (and, while
a sandbox lives, cnm's mount keeps the namespace and its interfaces from vanishing under it).
The runtime's namespace keeps its own settings: cnm only brings its loopback up, which the
embedded DNS server at 127.0.0.11 needs, and never changes its sysctl defaults. A namespace is
adopted by one sandbox at most, and never the host's.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from cnm import validate
from cnm.controller.files import SandboxFiles
from cnm.errors import Conflict, InvalidParameter, NotFound
from cnm.events import Event, EventBus
from cnm.model import Sandbox, SandboxOptions
from cnm.osl.links import HostNetwork, SandboxNetwork
from cnm.osl.namespace import (
    NetNamespace,
    bind_netns,
    create_netns,
    delete_netns,
    namespace_inode,
)
from cnm.store.api import Store
from cnm.transaction import transaction

HOST_NAMESPACE_KEY = "default"  # <exec-root>/netns/default pins the host namespace


class Sandboxes:
    def __init__(
        self,
        store: Store,
        host: HostNetwork,
        files: SandboxFiles,
        netns_dir: Path,
        events: EventBus[Event],
    ) -> None:
        self._store = store
        self._host = host
        self.files = files
        self.netns_dir = netns_dir
        self._events = events
        self._table: dict[str, Sandbox] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dictionaries above

    def load(self, sandboxes: Iterable[Sandbox]) -> None:
        with self._lock:
            self._table = {s.id: s for s in sandboxes}

    def all(self) -> list[Sandbox]:
        with self._lock:
            return list(self._table.values())

    def get(self, sandbox_id: str) -> Sandbox | None:
        with self._lock:
            return self._table.get(sandbox_id)

    def find(self, sandbox_id: str) -> Sandbox:
        sandbox = self.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} not found")
        return sandbox

    def put(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._table[sandbox.id] = sandbox

    def drop(self, sandbox_id: str) -> None:
        with self._lock:
            self._table.pop(sandbox_id, None)

    def lock(self, sandbox_id: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(sandbox_id, threading.Lock())

    def forget_lock(self, sandbox_id: str) -> None:
        with self._lock:
            self._locks.pop(sandbox_id, None)

    def create(self, options: SandboxOptions) -> Sandbox:
        sandbox_id = secrets.token_hex(32)
        container_id = options.container_id or sandbox_id
        sandbox = Sandbox(
            id=sandbox_id,
            container_id=container_id,
            key=str(self.netns_dir / sandbox_id),
            hostname=options.hostname or container_id[:12],
            domainname=options.domainname,
            use_host_network=options.use_host_network,
            dns=list(options.dns),
            dns_search=list(options.dns_search),
            dns_options=list(options.dns_options),
            extra_hosts=list(options.extra_hosts),
            link_hosts=list(options.link_hosts),
            embedded_dns=options.embedded_dns and not options.use_host_network,
            adopted_from=options.netns_path or "",
        )
        for entry in (*sandbox.extra_hosts, *sandbox.link_hosts):
            validate.extra_host(entry)
        for server in sandbox.dns:
            validate.dns_server(server)
        if sandbox.adopted_from:
            self._check_adoptable(sandbox)
        with transaction() as txn:
            if sandbox.use_host_network:
                sandbox.key = self._host.pin_at(str(self.netns_dir / HOST_NAMESPACE_KEY))
            else:
                namespace = self._make_namespace(sandbox)
                txn.on_failure("netns", lambda: delete_netns(sandbox.key))
                try:
                    with SandboxNetwork(namespace) as sandbox_net:
                        if sandbox.adopted_from:
                            sandbox_net.links.set_up(1)
                        else:
                            sandbox_net.bring_up_loopback(ipv6=False)
                finally:
                    namespace.close()
            self.files.make_directory(sandbox.id)
            txn.on_failure("sandbox files", lambda: self.files.remove(sandbox.id))
            self.files.write_new(sandbox)
            self._store.put(f"sandbox/{sandbox.id}", sandbox.to_json(), expect_revision=0)
            self.put(sandbox)
        self._events.emit(Event("sandbox-create", None, sandbox=replace(sandbox)))
        return sandbox

    def _make_namespace(self, sandbox: Sandbox) -> NetNamespace:
        if not sandbox.adopted_from:
            return create_netns(sandbox.key)
        try:
            return bind_netns(sandbox.adopted_from, sandbox.key)
        except OSError as err:
            raise InvalidParameter(
                f"cannot adopt the network namespace {sandbox.adopted_from}: {err.strerror}"
            ) from None

    def _check_adoptable(self, sandbox: Sandbox) -> None:
        """An existing namespace that is neither the host's nor another sandbox's."""
        path = sandbox.adopted_from
        if sandbox.use_host_network:
            raise InvalidParameter("a host-network sandbox cannot adopt a network namespace")
        if not os.path.isabs(path):
            raise InvalidParameter(f"network namespace path {path!r} is not absolute")
        try:
            os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"network namespace {path} does not exist") from None
        except OSError as err:
            raise InvalidParameter(f"cannot use {path}: {err.strerror}") from None
        inode = namespace_inode(path)
        if inode is None:
            raise InvalidParameter(f"{path} is not a network namespace")
        if inode == self._host.namespace.inode:
            raise InvalidParameter(f"{path} is the host's network namespace")
        for other in self.all():
            if not other.use_host_network and namespace_inode(other.key) == inode:
                raise Conflict(
                    f"network namespace {path} is already sandbox {other.id[:12]}'s "
                    f"(container {other.container_id[:12]})"
                )

    def delete_namespace(self, sandbox: Sandbox) -> None:
        """Delete the sandbox's own namespace: the kernel then drops all its links at once. An
        adopted namespace loses cnm's mount only (its links must have gone before)."""
        if not sandbox.use_host_network:
            delete_netns(sandbox.key)
