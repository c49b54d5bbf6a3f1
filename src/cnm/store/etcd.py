"""The etcd backend of the store contract: the global-scope store the hosts of a cluster share.

Why etcd3gw: it speaks etcd's v3 JSON gateway (``/v3/`` on etcd 3.4) over plain HTTP with
requests, synchronously, like the controller's threads; aetcd would bring gRPC and an asyncio
loop to drive from those threads. Its own Watcher is not used: it drops the message saying a
watch was cancelled (a compacted start revision) and gives no sign when its stream breaks, so
watches here read the gateway's event stream themselves and resume after the last event.

Keys: the contract's "network/<id>" lives at "<prefix>network/<id>" (prefix "/cnm/" by
default); values are stored as given. Revisions are etcd's own (store-wide, and each key's mod
revision), so a commit is one etcd transaction comparing mod revisions.

Failover: requests go to the endpoint that answered last. A read moves on to the next endpoint
on any connection failure; a write only when its connection was never made, since otherwise
it may have been applied: then StoreUnavailable says its outcome is unknown.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.client import Etcd3Client
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.exceptions import NewConnectionError

from cnm.errors import CnmError, InvalidParameter
from cnm.store.api import (
    CompactedCallback,
    Delete,
    Entry,
    GlobalStore,
    LeaseExpired,
    Put,
    StoreCompacted,
    StoreConflict,
    StoreUnavailable,
    WatchCallback,
    WatchEvent,
)

log = logging.getLogger(__name__)

API_PATH = "/v3/"  # etcd >= 3.4 (3.3 served /v3beta/, older ones /v3alpha/)
DEFAULT_PREFIX = "/cnm/"
DEFAULT_PORT = 2379
DEFAULT_TIMEOUT = 5.0
_GRPC_NOT_FOUND = 5
_RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
# gRPC metadata through the gateway: etcd ends a watch stream whose member loses the raft
# leader, so the watch moves to a member that still sees changes.
_REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
# A member that vanished without closing the stream (a partition) is noticed in about 11 s.
_KEEPALIVE_OPTIONS = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
]


def parse_cluster_store(url: str) -> list[str]:
    """The etcd endpoints ("host:port") of a ``--cluster-store`` value
    ``etcd://host[:port][,host[:port]...]``; the port defaults to 2379."""
    scheme, separator, hosts = url.partition("://")
    if not separator or scheme != "etcd":
        raise InvalidParameter(
            f"cluster store {url!r}: expected etcd://host:port[,host:port...] "
            "(etcd is the only cluster store)"
        )
    hosts = hosts.removesuffix("/")
    if not hosts or any(c in hosts for c in "/?#@"):
        raise InvalidParameter(f"cluster store {url!r}: expected etcd://host:port[,host:port...]")
    return [_normalise_endpoint(endpoint) for endpoint in hosts.split(",")]


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{endpoint}")
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise InvalidParameter(f"etcd endpoint {endpoint!r}: {error}") from None
    if not host or endpoint != endpoint.strip() or port == 0:
        raise InvalidParameter(f"etcd endpoint {endpoint!r}: expected host:port")
    return host, port or DEFAULT_PORT


def _normalise_endpoint(endpoint: str) -> str:
    host, port = _split_endpoint(endpoint)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _range_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with ``prefix``"."""
    stem = prefix.rstrip(b"\xff")
    return stem[:-1] + bytes([stem[-1] + 1]) if stem else b"\0"


def _never_sent(error: etcd_errors.Etcd3Exception) -> bool:
    """True if the request that failed never left: no connection to etcd was made."""
    cause = error.__context__
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    return (
        isinstance(cause, requests.exceptions.ConnectionError)
        and bool(cause.args)
        and isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)
    )


def _reason(error: BaseException) -> str:
    """A short reason for a failed request: the socket error at the root of the chain."""
    reason = "no answer"
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror
        elif isinstance(cause, requests.exceptions.Timeout):
            reason = "timed out"
        elif isinstance(cause, etcd_errors.Etcd3Exception) and cause.detail_text:
            reason = _etcd_message(cause.detail_text)
        cause = cause.__cause__ or cause.__context__
    return reason


def _error_body(detail: str | None) -> dict[str, Any]:
    """The JSON body of an etcd error answer ({"message": ..., "code": <gRPC code>})."""
    try:
        body = json.loads(detail or "")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _etcd_message(detail: str) -> str:
    return str(_error_body(detail).get("message") or detail)


def _translate(error: etcd_errors.Etcd3Exception, endpoint: str) -> CnmError:
    """A cnm error for an etcd answer that is not a success."""
    body = _error_body(error.detail_text)
    message = str(body.get("message") or error.detail_text or type(error).__name__)
    if body.get("code") == _GRPC_NOT_FOUND and "lease" in message:
        return LeaseExpired(f"etcd at {endpoint}: {message}")
    return CnmError(f"etcd at {endpoint}: {message}")


class EtcdStore(GlobalStore):
    """A Store in one etcd cluster, safe to call from several threads.

    Watch callbacks run in one thread per watch, in revision order, after etcd has committed
    the change; they see changes made by any client of the cluster, not only this one."""

    scope = "global"

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise InvalidParameter("an etcd store needs at least one endpoint")
        if not prefix.endswith("/"):
            raise InvalidParameter(f"etcd key prefix {prefix!r} must end with '/'")
        self.endpoints = [_normalise_endpoint(endpoint) for endpoint in endpoints]
        self.prefix = prefix
        self.timeout = timeout
        self._clients = [
            Etcd3Client(host=host, port=port, timeout=timeout, api_path=API_PATH)
            for host, port in map(_split_endpoint, self.endpoints)
        ]
        self._preferred = 0  # the endpoint that answered last
        self._lock = threading.Lock()
        self._watches: set[_PrefixWatch] = set()

    # --- keys ------------------------------------------------------------------------------

    def _etcd_key(self, key: str) -> bytes:
        return (self.prefix + key).encode("utf-8", "surrogateescape")

    def _contract_key(self, encoded: str) -> str:
        key = base64.b64decode(encoded).decode("utf-8", "surrogateescape")
        return key.removeprefix(self.prefix)

    def _entry(self, kv: dict[str, Any]) -> Entry:
        value = base64.b64decode(kv.get("value", ""))
        return Entry(self._contract_key(kv["key"]), value, int(kv["mod_revision"]))

    # --- requests --------------------------------------------------------------------------

    def _endpoint_order(self) -> list[int]:
        first = self._preferred
        return [(first + offset) % len(self._clients) for offset in range(len(self._clients))]

    def _call(self, path: str, payload: dict[str, Any], *, retry_safe: bool) -> Any:
        """POST to the gateway, failing over as the module's note says."""
        failures: list[str] = []
        for index in self._endpoint_order():
            client, endpoint = self._clients[index], self.endpoints[index]
            try:
                reply = client.post(client.get_url(path), json=payload)
            except (etcd_errors.ConnectionFailedError, etcd_errors.ConnectionTimeoutError) as error:
                if not (retry_safe or _never_sent(error)):
                    raise StoreUnavailable(
                        f"etcd at {endpoint} failed during a write ({_reason(error)}); "
                        "it may or may not have been applied"
                    ) from None
                failures.append(f"{endpoint}: {_reason(error)}")
                continue
            except etcd_errors.Etcd3Exception as error:
                raise _translate(error, endpoint) from None
            self._preferred = index
            return reply
        raise StoreUnavailable(f"no etcd endpoint answered ({'; '.join(failures)})")

    # --- the contract ----------------------------------------------------------------------

    def revision(self) -> int:
        payload = {"key": _b64(self._etcd_key("")), "count_only": True}
        return int(self._call("kv/range", payload, retry_safe=True)["header"]["revision"])

    def get(self, key: str) -> Entry | None:
        reply = self._call("kv/range", {"key": _b64(self._etcd_key(key))}, retry_safe=True)
        kvs = reply.get("kvs", [])
        return self._entry(kvs[0]) if kvs else None

    def list(self, prefix: str) -> list[Entry]:
        return self.list_with_revision(prefix)[0]

    def list_with_revision(self, prefix: str) -> tuple[builtins.list[Entry], int]:
        """``list(prefix)`` and the store revision it was read at: watching from that revision
        plus one misses no change and repeats none."""
        start = self._etcd_key(prefix)
        payload = {"key": _b64(start), "range_end": _b64(_range_end(start))}
        reply = self._call("kv/range", payload, retry_safe=True)
        entries = [self._entry(kv) for kv in reply.get("kvs", [])]
        return entries, int(reply["header"]["revision"])

    def commit(self, ops: Sequence[Put | Delete]) -> int:
        """Apply all ops in one etcd transaction and return the store revision.

        The transaction compares the mod revision of every key with an ``expect_revision``
        (0: its create revision is 0, it does not exist); if any differs, it reads those
        keys instead, to name the one that conflicted, and writes nothing."""
        keys = {op.key for op in ops}
        if len(keys) != len(ops):
            raise InvalidParameter("a store commit may not name the same key twice")
        compares: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        writes: list[dict[str, Any]] = []
        for op in ops:
            key = _b64(self._etcd_key(op.key))
            if op.expect_revision == 0:
                compares.append(
                    {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
                )
            elif op.expect_revision is not None:
                compares.append(
                    {
                        "key": key,
                        "target": "MOD",
                        "result": "EQUAL",
                        "mod_revision": str(op.expect_revision),
                    }
                )
            if op.expect_revision is not None:
                checks.append({"request_range": {"key": key, "keys_only": True}})
            if isinstance(op, Put):
                put = {"key": key, "value": _b64(op.value)}
                if op.lease is not None:
                    put["lease"] = str(op.lease)
                writes.append({"request_put": put})
            else:
                writes.append({"request_delete_range": {"key": key}})
        txn = {"compare": compares, "success": writes, "failure": checks}
        reply = self._call("kv/txn", txn, retry_safe=False)
        if not reply.get("succeeded"):
            raise self._conflict(ops, reply.get("responses", []))
        return int(reply["header"]["revision"])

    @staticmethod
    def _conflict(ops: Sequence[Put | Delete], checks: Sequence[dict[str, Any]]) -> StoreConflict:
        expecting = [op for op in ops if op.expect_revision is not None]
        for op, check in zip(expecting, checks, strict=False):
            kvs = check.get("response_range", {}).get("kvs", [])
            actual = int(kvs[0]["mod_revision"]) if kvs else 0
            if actual != op.expect_revision:
                return StoreConflict(
                    f"store key {op.key!r} is at revision {actual}, expected {op.expect_revision}"
                )
        return StoreConflict("a store precondition did not hold")

    def watch(
        self,
        prefix: str,
        callback: WatchCallback,
        *,
        start_revision: int | None = None,
        on_compacted: CompactedCallback | None = None,
    ) -> Callable[[], None]:
        """Call ``callback`` for every change under ``prefix`` from ``start_revision`` on
        (default: every later change), in revision order, surviving lost connections.

        A daemon that saw up to revision N catches up with ``start_revision=N + 1``. If that
        revision is compacted, or becomes so while etcd is out of reach, the watch ends and
        ``on_compacted`` gets a StoreCompacted (without it, that is logged as an error).
        Raises StoreUnavailable if no endpoint answers when the watch starts without a
        ``start_revision``."""
        if start_revision is not None and start_revision < 1:
            raise InvalidParameter(f"watch start revision {start_revision} is not positive")
        first = self.revision() + 1 if start_revision is None else start_revision
        watch = _PrefixWatch(self, prefix, callback, first, on_compacted)
        with self._lock:
            self._watches.add(watch)
        watch.start()

        def unwatch() -> None:
            watch.stop()
            with self._lock:
                self._watches.discard(watch)

        return unwatch

    def watch_from(
        self,
        prefix: str,
        callback: WatchCallback,
        start_revision: int,
        on_compacted: CompactedCallback,
    ) -> Callable[[], None]:
        return self.watch(
            prefix, callback, start_revision=start_revision, on_compacted=on_compacted
        )

    def close(self) -> None:
        with self._lock:
            watches, self._watches = self._watches, set()
        for watch in watches:
            watch.stop()
        for client in self._clients:
            client.session.close()

    # --- leases ----------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds (etcd may round it up); keys put with it are deleted
        when it expires or is revoked."""
        if ttl < 1:
            raise InvalidParameter(f"lease TTL {ttl} is not positive")
        # A grant repeated on another endpoint at worst leaves an unused lease that expires.
        reply = self._call("lease/grant", {"TTL": ttl}, retry_safe=True)
        return int(reply["ID"])

    def keepalive(self, lease_id: int) -> int:
        """Renew a lease; returns its TTL. Raises LeaseExpired if it is gone."""
        reply = self._call("lease/keepalive", {"ID": str(lease_id)}, retry_safe=True)
        ttl = int(reply.get("result", {}).get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(f"etcd lease {lease_id:x} has expired")
        return ttl

    def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting its keys; a lease already gone is not an error."""
        with contextlib.suppress(LeaseExpired):
            self._call("kv/lease/revoke", {"ID": str(lease_id)}, retry_safe=True)


class _KeepAliveAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options, *_KEEPALIVE_OPTIONS]
        super().init_poolmanager(*args, **kwargs)


class _PrefixWatch:
    """One watch: a thread reading etcd's event stream for a prefix. When the stream breaks it
    reconnects to any endpoint at the revision after the last event it delivered, so no event
    is lost or repeated (etcd never splits one revision's events between two messages)."""

    def __init__(
        self,
        store: EtcdStore,
        prefix: str,
        callback: WatchCallback,
        next_revision: int,
        on_compacted: CompactedCallback | None,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._callback = callback
        self._on_compacted = on_compacted
        self._next_revision = next_revision
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._session = requests.Session()
        self._session.mount("http://", _KeepAliveAdapter())
        self._thread = threading.Thread(target=self._run, name=f"etcd-watch {prefix}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            response = self._response
        if response is not None:
            # Closing a socket does not wake a thread blocked reading it; shutting it down does.
            connection = response.raw.connection
            if connection is not None and connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=self._store.timeout)

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stopped.is_set():
                try:
                    response = self._connect()
                    if failures:
                        log.info(
                            "watch on %r resumed at revision %d", self._prefix, self._next_revision
                        )
                    failures = 0
                    self._follow(response)
                except StoreCompacted as compacted:
                    self._report_compacted(compacted)
                    return
                except (StoreUnavailable, requests.RequestException, ValueError) as error:
                    if self._stopped.is_set():
                        return
                    if not failures:
                        log.warning(
                            "watch on %r lost etcd (%s); retrying from revision %d",
                            self._prefix,
                            error,
                            self._next_revision,
                        )
                    failures += 1
                    self._stopped.wait(_RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS)) - 1])
        finally:
            self._session.close()

    def _connect(self) -> requests.Response:
        store = self._store
        start = store._etcd_key(self._prefix)
        request = {
            "create_request": {
                "key": _b64(start),
                "range_end": _b64(_range_end(start)),
                "start_revision": str(self._next_revision),
            }
        }
        failures: list[str] = []
        for index in store._endpoint_order():
            client, endpoint = store._clients[index], store.endpoints[index]
            try:
                response = self._session.post(
                    client.get_url("watch"),
                    json=request,
                    headers=_REQUIRE_LEADER,
                    stream=True,
                    timeout=(store.timeout, None),
                )
            except requests.RequestException as error:
                failures.append(f"{endpoint}: {_reason(error)}")
                continue
            if response.ok:
                return response
            failures.append(f"{endpoint}: HTTP {response.status_code}")
            response.close()
        raise StoreUnavailable(f"no etcd endpoint answered ({'; '.join(failures)})")

    def _follow(self, response: requests.Response) -> None:
        with self._lock:
            if self._stopped.is_set():
                response.close()
                return
            self._response = response
        try:
            for line in response.iter_lines():
                if line:
                    self._handle(json.loads(line))
        finally:
            with self._lock:
                self._response = None
            response.close()
        raise StoreUnavailable("etcd ended the watch stream")

    def _handle(self, message: dict[str, Any]) -> None:
        if "error" in message:
            raise StoreUnavailable(str(message["error"].get("message", message["error"])))
        result = message.get("result", {})
        if result.get("canceled"):
            compact_revision = int(result.get("compact_revision", 0))
            if compact_revision:
                raise StoreCompacted(self._prefix, self._next_revision, compact_revision)
            raise StoreUnavailable(result.get("cancel_reason") or "etcd cancelled the watch")
        events = result.get("events", [])
        for event in events:
            kv = event["kv"]
            value = None if event.get("type") == "DELETE" else base64.b64decode(kv.get("value", ""))
            self._deliver(
                WatchEvent(self._store._contract_key(kv["key"]), value, int(kv["mod_revision"]))
            )
        if events:
            self._next_revision = int(events[-1]["kv"]["mod_revision"]) + 1

    def _deliver(self, event: WatchEvent) -> None:
        try:
            self._callback(event)
        except Exception:
            log.exception(
                "store watch callback %r failed on %s at revision %d",
                self._callback,
                event.key,
                event.revision,
            )

    def _report_compacted(self, compacted: StoreCompacted) -> None:
        if self._on_compacted is None:
            log.error("%s", compacted)
            return
        try:
            self._on_compacted(compacted)
        except Exception:
            log.exception("store compaction callback %r failed", self._on_compacted)
