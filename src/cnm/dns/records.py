"""The embedded resolver's records: per network, the names of the containers on it; per sandbox,
the view (its networks in the sandbox's order) that its queries are answered from.

Names (Docker's rule): on every user-defined network an endpoint is known by its container's
name (the endpoint's name), its aliases on that network, the container's 12-character short ID
and its hostname, each also as ``<name>.<network>``; every address also has a PTR record naming
``<container>.<network>.``. The predefined networks (the default bridge) offer no names. A
sandbox sees only the networks it is joined to; the first of them that has the name answers, in
the order libnetwork keeps a sandbox's endpoints and resolves names in (``controller.gateway``:
internal networks last, dual-stack first, then gateway priority, then the network's name), so
one alias can mean different containers on different networks.

Links (``--link name:alias`` on a user-defined network, Docker's rule there): the alias, also as
``<alias>.<network>``, names the linked container on that network for the linking sandbox
only, and is looked up before any other name, as libnetwork's sandbox resolves aliases first.
It follows the linked container: nothing is copied, the view keeps the network's live table and
the target's key.

Why this shape: lookups run on the resolver's event-loop thread about 10^5 times a second,
updates in the controller's threads on connect, disconnect, start, stop and rename. Lookups take
no lock: an update builds new bytes, tuples and dicts and installs them with one assignment (a
dict item or an attribute, each atomic under the GIL), so a reader sees the old record or the
new one, never a mix. Keys are names in wire form (RFC 1035 §3.1) lowercased as ASCII, which is
DNS's case-insensitive comparison (RFC 1035 §2.3.3, RFC 4343): the hot path lowercases the
question's bytes and looks them up without parsing. Answers are pre-encoded resource records
whose owner name is a pointer to the question at offset 12 (RFC 1035 §4.1.4), so a reply is a
header, the asker's own question and these bytes. Records sharing a name are kept whole as an
RRset (RFC 2181 §5) and rotated per query by the resolver.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
from dataclasses import dataclass

from cnm.controller.gateway import order_key
from cnm.model import Endpoint, Network, Sandbox

TYPE_A = b"\x00\x01"
TYPE_PTR = b"\x00\x0c"
TYPE_AAAA = b"\x00\x1c"
TYPE_ANY = b"\x00\xff"
CLASS_IN = b"\x00\x01"
MAX_NAME_WIRE = 255  # RFC 1035 §2.3.4
MAX_LABEL = 63


def encode_name(text: str) -> bytes | None:
    """``text`` as a lowercased wire-format name, or None when it cannot be one (an empty
    label, a label over 63 octets, a name over 255)."""
    labels = text.rstrip(".").split(".")
    parts = []
    for label in labels:
        raw = label.encode()
        if not raw or len(raw) > MAX_LABEL:
            return None
        parts.append(bytes([len(raw)]) + raw)
    wire = b"".join(parts).lower() + b"\x00"
    return wire if len(wire) <= MAX_NAME_WIRE else None


def _rr(rtype: bytes, ttl: int, rdata: bytes) -> bytes:
    return b"\xc0\x0c" + rtype + CLASS_IN + struct.pack("!IH", ttl, len(rdata)) + rdata


@dataclass(frozen=True, slots=True)
class Claim:
    """One endpoint's share of a name: why it has the name, and its records."""

    container: str
    why: str  # "container name", "alias", "short id", "hostname" or "address" (PTR)
    a: bytes = b""
    aaaa: bytes = b""
    ptr: bytes = b""


# One answer: (ANCOUNT as two bytes, count, the records, the length of one record when they
# rotate, else 0).
Answer = tuple[bytes, int, bytes, int]
NO_ANSWER: Answer = (b"\x00\x00", 0, b"", 0)


class NameRecord:
    """Everything one network knows under one name."""

    __slots__ = ("answers", "claims", "turn")

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}  # endpoint id -> claim, in join order
        self.answers: dict[bytes, Answer] = {}  # qtype -> answer; a missing type is NODATA
        self.turn = 0  # round-robin position, advanced by the resolver

    def rebuild(self) -> None:
        answers: dict[bytes, Answer] = {}
        for qtype, field, size in (
            (TYPE_A, "a", 16),
            (TYPE_AAAA, "aaaa", 28),
            (TYPE_PTR, "ptr", 0),
        ):
            records = [getattr(c, field) for c in self.claims.values() if getattr(c, field)]
            if records:
                answers[qtype] = (len(records).to_bytes(2), len(records), b"".join(records), size)
        a, aaaa = answers.get(TYPE_A, NO_ANSWER), answers.get(TYPE_AAAA, NO_ANSWER)
        if a[1] + aaaa[1]:
            count = a[1] + aaaa[1]
            answers[TYPE_ANY] = (count.to_bytes(2), count, a[2] + aaaa[2], 0)
        self.answers = answers


class NetworkTable:
    """The names of one network."""

    __slots__ = ("id", "internal", "name", "names", "owned", "predefined")

    def __init__(self, network: Network) -> None:
        self.id = network.id
        self.name = network.name
        self.internal = network.internal
        self.predefined = network.predefined
        self.names: dict[bytes, NameRecord] = {}
        self.owned: dict[str, list[bytes]] = {}  # endpoint id -> the keys it claims


class View:
    """What one sandbox sees: the name tables of its networks in join order (``tables`` for
    the hot path, ``networks`` to explain), and whether its queries may go upstream (any of
    its networks is not internal). ``flags`` are the reply's second and third header bytes
    for a found name and for NXDOMAIN, indexed by the query's RD bit (RFC 1035 §4.1.1: RD is
    copied, RA says whether recursion is available to this asker)."""

    __slots__ = ("flags", "forward", "links", "networks", "nxflags", "tables")

    def __init__(self) -> None:
        self.networks: tuple[NetworkTable, ...] = ()
        self.tables: tuple[dict[bytes, NameRecord], ...] = ()
        # alias key -> (network table, the linked container's key), in join order
        self.links: dict[bytes, tuple[tuple[NetworkTable, bytes], ...]] = {}
        self.set_forward(False)

    def set_forward(self, forward: bool) -> None:
        ra = 0x80 if forward else 0
        self.flags = (bytes([0x84, ra]), bytes([0x85, ra]))
        self.nxflags = (bytes([0x84, ra | 3]), bytes([0x85, ra | 3]))
        self.forward = forward

    def find(self, key: bytes) -> tuple[NetworkTable, NameRecord] | None:
        for table, target in self.links.get(key, ()):
            record = table.names.get(target)
            if record is not None:
                return table, record
        for table in self.networks:
            record = table.names.get(key)
            if record is not None:
                return table, record
        return None


def _names(endpoint: Endpoint, container_id: str, hostname: str) -> dict[str, str]:
    """Name -> why, lowercased, the first reason kept where names coincide."""
    names: dict[str, str] = {}
    for name, why in (
        (endpoint.name, "container name"),
        *((alias, "alias") for alias in endpoint.aliases),
        (container_id[:12], "short id"),
        (hostname, "hostname"),
    ):
        if name:
            key = name.lower()
            names[key] = f"{names[key]}, {why}" if key in names and why not in names[key] else why
    return names


def _add(table: NetworkTable, key: bytes, endpoint_id: str, claim: Claim) -> None:
    """Add a claim to the name's record, copying the claims (a reader may be iterating them)
    and installing the record only once its answers are built."""
    record = table.names.get(key)
    if record is None:
        record = NameRecord()
        record.claims = {endpoint_id: claim}
        record.rebuild()
        table.names[key] = record
    else:
        record.claims = {**record.claims, endpoint_id: claim}
        record.rebuild()


class Records:
    """All networks' tables and all sandboxes' views; updates are serialised by a lock."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tables: dict[str, NetworkTable] = {}
        # sandbox -> endpoint -> (its place in the sandbox's order, network id)
        self._members: dict[str, dict[str, tuple[tuple[bool, bool, int, str], str]]] = {}
        self._links: dict[str, dict[str, dict[str, str]]] = {}  # sandbox -> ep -> alias -> name
        self._views: dict[str, View] = {}

    def view(self, sandbox_id: str) -> View:
        """The sandbox's view (made empty if the sandbox is not known yet); the object stays
        the same for the sandbox's life, updates change its attributes."""
        with self._lock:
            return self._view(sandbox_id)

    def _view(self, sandbox_id: str) -> View:
        view = self._views.get(sandbox_id)
        if view is None:
            view = self._views[sandbox_id] = View()
        return view

    def add_endpoint(self, network: Network, endpoint: Endpoint, sandbox: Sandbox) -> None:
        """Record (or re-record, after a rename) a joined endpoint's names and addresses."""
        with self._lock:
            table = self._tables.get(network.id)
            if table is None:
                table = self._tables[network.id] = NetworkTable(network)
            self._unclaim(table, endpoint.id)
            if not network.predefined:
                self._claim(table, endpoint, sandbox.container_id, sandbox.hostname)
            dual = bool(endpoint.gateway_v4 and endpoint.gateway_v6)
            order = order_key(network.internal, dual, endpoint.gateway_priority, network.name)
            self._members.setdefault(sandbox.id, {})[endpoint.id] = (order, table.id)
            links = self._links.setdefault(sandbox.id, {})
            links.pop(endpoint.id, None)
            if endpoint.links and not network.predefined:
                links[endpoint.id] = dict(endpoint.links)
            self._refresh(sandbox.id)

    def add_peer(self, network: Network, endpoint: Endpoint) -> None:
        """Record the names of an endpoint on another host of the cluster (a peer): it is
        in no sandbox here, its container's id and hostname come with its record."""
        with self._lock:
            table = self._tables.get(network.id)
            if table is None:
                table = self._tables[network.id] = NetworkTable(network)
            self._unclaim(table, endpoint.id)
            self._claim(table, endpoint, endpoint.container_id, endpoint.hostname)

    def remove_peer(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            table = self._tables.get(network_id)
            if table is not None:
                self._unclaim(table, endpoint_id)

    def remove_endpoint(self, network_id: str, endpoint_id: str, sandbox_id: str) -> None:
        with self._lock:
            table = self._tables.get(network_id)
            if table is not None:
                self._unclaim(table, endpoint_id)
            self._links.get(sandbox_id, {}).pop(endpoint_id, None)
            members = self._members.get(sandbox_id)
            if members is not None:
                members.pop(endpoint_id, None)
                self._refresh(sandbox_id)

    def forget_sandbox(self, sandbox_id: str) -> None:
        with self._lock:
            self._members.pop(sandbox_id, None)
            self._links.pop(sandbox_id, None)
            self._views.pop(sandbox_id, None)

    def drop_network(self, network_id: str) -> None:
        with self._lock:
            self._tables.pop(network_id, None)

    def _claim(
        self, table: NetworkTable, endpoint: Endpoint, container_id: str, hostname: str
    ) -> None:
        ttl = self.ttl
        a = aaaa = b""
        reverse: list[str] = []
        for text in (endpoint.ipv4_address, endpoint.ipv6_address):
            if not text:
                continue
            address = ipaddress.ip_interface(text).ip
            if address.version == 4:
                a = _rr(TYPE_A, ttl, address.packed)
            else:
                aaaa = _rr(TYPE_AAAA, ttl, address.packed)
            reverse.append(address.reverse_pointer)
        if not (a or aaaa):
            return
        keys: list[bytes] = []
        for name, why in _names(endpoint, container_id, hostname).items():
            claim = Claim(endpoint.name, why, a, aaaa)
            for key in (encode_name(name), encode_name(f"{name}.{table.name}")):
                if key is not None:
                    _add(table, key, endpoint.id, claim)
                    keys.append(key)
        target = encode_name(f"{endpoint.name}.{table.name}")
        if target is not None:
            claim = Claim(endpoint.name, "address", ptr=_rr(TYPE_PTR, ttl, target))
            for name in reverse:
                key = encode_name(name)
                assert key is not None  # reverse names are short and well formed
                _add(table, key, endpoint.id, claim)
                keys.append(key)
        table.owned[endpoint.id] = keys

    @staticmethod
    def _unclaim(table: NetworkTable, endpoint_id: str) -> None:
        for key in table.owned.pop(endpoint_id, ()):
            record = table.names.get(key)
            if record is None or endpoint_id not in record.claims:
                continue
            if len(record.claims) == 1:
                del table.names[key]
            else:
                record.claims = {k: v for k, v in record.claims.items() if k != endpoint_id}
                record.rebuild()

    def _refresh(self, sandbox_id: str) -> None:
        joined = self._members.get(sandbox_id, {})
        members = sorted(joined.values())
        tables = [self._tables[network_id] for _, network_id in members]
        view = self._view(sandbox_id)
        links: dict[bytes, tuple[tuple[NetworkTable, bytes], ...]] = {}
        link_map = self._links.get(sandbox_id, {})
        for endpoint_id, (_, network_id) in sorted(joined.items(), key=lambda item: item[1]):
            table = self._tables[network_id]
            for alias, name in link_map.get(endpoint_id, {}).items():
                target = encode_name(name)
                for key in (encode_name(alias), encode_name(f"{alias}.{table.name}")):
                    if key is not None and target is not None:
                        links[key] = (*links.get(key, ()), (table, target))
        view.links = links
        view.networks = tuple(t for t in tables if not t.predefined)
        view.tables = tuple(t.names for t in view.networks)
        view.set_forward(any(not t.internal for t in tables))
