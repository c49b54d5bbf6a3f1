"""Links, addresses, routes and sysctls over netlink (pyroute2). The OS layer is the only place
that speaks it: this module, and vxlan.py and uplink.py beside it, on the sockets opened here.

Why it looks like this:
* ``HostNetwork`` is bound to the namespace that was current when it was made (the daemon's
  "host"; in tests a throwaway namespace). Each thread gets its own netlink socket opened in that
  namespace, with no multicast groups, so sockets never fill with events nobody reads.
* A veth is created with its peer born inside the sandbox namespace (IFLA_NET_NS_FD in the peer's
  attributes) and its host end enslaved to the bridge in the same RTM_NEWLINK; moving a link
  between namespaces afterwards costs ~20 ms.
* IPv6 is switched off on both ends of a veth of a network without IPv6, before the link goes
  up (net.ipv6.conf.<if>.disable_ipv6): otherwise every new port floods DAD, MLD and router
  solicitations to every other bridge port, and attach cost grows with the number of ports.
* Links are looked up by name through RTM_GETLINK with IFLA_IFNAME (one message), never by
  dumping all links; only start-up reconciliation dumps.
* A link a remote plugin made is moved into a sandbox and renamed by one RTM_SETLINK carrying
  IFLA_NET_NS_FD and IFLA_IFNAME: the kernel moves it first (using the new name only if the
  old one is taken there) and renames it in the target namespace, so a failure leaves it where
  it was, under its old name. It arrives down: moving closes a device. The way back is the
  same message in the other direction (libnetwork gives the plugin its link back so).
* /proc/sys/net is resolved against the calling thread's namespace, so sysctl writes for a
  namespace happen while the thread is inside it.
* A macvlan child is born inside the sandbox the same way (IFLA_NET_NS_FD; its lower link,
  IFLA_LINK, is looked up in the namespace of the socket, the host's): ~0.5 ms, where creating
  it in the host and moving it costs ~25 ms.
* Whether the kernel has a link type is asked by creating one without its lower link: a kernel
  without the type answers EOPNOTSUPP (rtnetlink finds no ops for the kind, even after trying
  to load its module) before it looks at the attributes; one with it answers EINVAL.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cnm import faults
from cnm.errors import CnmError, Conflict, InvalidParameter, NotFound, Unavailable
from cnm.osl.announce import announce
from cnm.osl.announce import cancel as cancel_announcements
from cnm.osl.namespace import NetNamespace, current_thread_namespace, pin_current_netns

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

EXFULL = 54  # "Exchange full": a Linux bridge takes at most 1,023 ports (BR_MAX_PORTS)


def _open_socket() -> IPRoute:
    return IPRoute(groups=0)


def netlink_error(err: NetlinkError, what: str) -> CnmError:
    """The cnm error for a netlink failure while doing ``what``."""
    if err.code == errno.EEXIST:
        return Conflict(f"{what}: already exists")
    if err.code == EXFULL:
        return Unavailable(f"{what}: the bridge has no free port (a Linux bridge takes 1023)")
    if err.code in (errno.EINVAL, errno.ERANGE):
        return InvalidParameter(f"{what}: {err.args[1] if len(err.args) > 1 else err}")
    return CnmError(f"{what}: {err}")


@dataclass(frozen=True)
class LinkSummary:
    index: int
    name: str
    kind: str | None
    alias: str | None
    master: int | None


@dataclass(frozen=True)
class LinkDetails:
    index: int
    name: str
    kind: str | None
    alias: str | None
    mac: str | None
    mtu: int
    loopback: bool


IFF_UP = 0x1
IFF_LOOPBACK = 0x8
MACVLAN_MODES = ("private", "vepa", "bridge", "passthru")


def write_sysctl(key: str, value: str) -> None:
    """Write ``net.ipv6.conf.eth0.disable_ipv6``-style keys for the calling thread's namespace."""
    Path("/proc/sys", *key.split(".")).write_text(value)


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


class _Links:
    """Netlink operations against one namespace through a socket opened there."""

    def __init__(self, ipr: IPRoute) -> None:
        self.ipr = ipr

    def index_of(self, name: str) -> int | None:
        try:
            msgs = self.ipr.link("get", ifname=name)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            raise netlink_error(err, f"look up link {name}") from err
        return msgs[0]["index"] if msgs else None

    def details(self, name: str) -> LinkDetails | None:
        """The link named ``name`` with its type, alias, MAC and MTU, or None."""
        try:
            msgs = self.ipr.link("get", ifname=name)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            raise netlink_error(err, f"look up link {name}") from err
        if not msgs:
            return None
        msg = msgs[0]
        info = msg.get_attr("IFLA_LINKINFO")
        return LinkDetails(
            index=msg["index"],
            name=msg.get_attr("IFLA_IFNAME"),
            kind=info.get_attr("IFLA_INFO_KIND") if info else None,
            alias=msg.get_attr("IFLA_IFALIAS"),
            mac=msg.get_attr("IFLA_ADDRESS"),
            mtu=msg.get_attr("IFLA_MTU"),
            loopback=bool(msg["flags"] & IFF_LOOPBACK),
        )

    def set_up(self, index: int) -> None:
        faults.step("link up")
        self.ipr.link("set", index=index, state="up")

    def set_down(self, index: int) -> None:
        self.ipr.link("set", index=index, state="down")

    def set_master(self, index: int, master: int) -> None:
        try:
            self.ipr.link("set", index=index, master=master)
        except NetlinkError as err:
            raise netlink_error(err, f"enslave link {index} to {master}") from err

    def delete(self, index: int) -> None:
        faults.step("delete link")
        try:
            self.ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise netlink_error(err, f"delete link {index}") from err

    def add_address(self, index: int, address: IPInterface) -> None:
        faults.step("add address")
        kwargs: dict[str, object] = {}
        if address.version == 4:
            kwargs["broadcast"] = str(address.network.broadcast_address)
        else:
            kwargs["flags"] = 0x02  # IFA_F_NODAD: the IPAM already made the address unique
        try:
            self.ipr.addr(
                "add",
                index=index,
                address=str(address.ip),
                prefixlen=address.network.prefixlen,
                **kwargs,
            )
        except NetlinkError as err:
            raise netlink_error(err, f"add address {address}") from err

    def add_route(
        self,
        destination: IPNetwork,
        *,
        gateway: IPAddress | None = None,
        oif: int | None = None,
        replace: bool = False,
    ) -> None:
        """A route to ``destination`` in the main table (``replace``: in place of one with the
        same key). A ``gateway`` of the other family is an RFC 8950 next hop (IPv4 via an IPv6
        link-local address)."""
        spec: dict[str, object] = {
            "dst": str(destination),
            "family": 10 if destination.version == 6 else 2,
        }
        if gateway is not None and gateway.version != destination.version:
            spec["via"] = {"family": 10 if gateway.version == 6 else 2, "addr": str(gateway)}
        elif gateway is not None:
            spec["gateway"] = str(gateway)
        if oif is not None:
            spec["oif"] = oif
        try:
            faults.step("add route")
            self.ipr.route("replace" if replace else "add", **spec)
        except NetlinkError as err:
            raise netlink_error(err, f"add route to {destination}") from err

    def route_links(self, destination: IPNetwork) -> list[int]:
        """The output links of the main table's routes to exactly ``destination``."""
        family = 10 if destination.version == 6 else 2
        found = []
        for msg in self.ipr.route("dump", family=family):
            if msg["dst_len"] != destination.prefixlen or msg.get_attr("RTA_TABLE") != 254:
                continue
            dst = msg.get_attr("RTA_DST")
            at = ipaddress.ip_address(dst) if dst else None
            if at == destination.network_address and msg.get_attr("RTA_OIF") is not None:
                found.append(msg.get_attr("RTA_OIF"))
        return found

    def delete_route(self, destination: IPNetwork) -> None:
        family = 10 if destination.version == 6 else 2
        try:
            self.ipr.route("del", dst=str(destination), family=family)
        except NetlinkError as err:
            if err.code not in (errno.ESRCH, errno.ENOENT):  # IPv4 says ESRCH, IPv6 ENOENT
                raise netlink_error(err, f"delete route to {destination}") from err

    def move(self, index: int, target: NetNamespace, new_name: str, mac: str | None = None) -> None:
        """Move link ``index`` to ``target``, named ``new_name`` there (see the module note)."""
        spec: dict[str, object] = {"index": index, "net_ns_fd": target.fd, "ifname": new_name}
        if mac is not None:
            spec["address"] = mac
        try:
            self.ipr.link("set", **spec)
        except NetlinkError as err:
            raise netlink_error(err, f"move link {index} to {target.path} as {new_name}") from err

    def addresses(self, index: int) -> list[IPInterface]:
        """The addresses on link ``index`` (link-local ones included)."""
        found: list[IPInterface] = []
        for msg in self.ipr.addr("dump", index=index):
            if msg["index"] != index:
                continue
            address = msg.get_attr("IFA_ADDRESS")
            found.append(ipaddress.ip_interface(f"{address}/{msg['prefixlen']}"))
        return found

    def is_up(self, index: int) -> bool:
        msgs = self.ipr.link("get", index=index)
        return bool(msgs and msgs[0]["flags"] & IFF_UP)

    def default_gateway(self, version: int) -> tuple[IPAddress, int] | None:
        """The main table's default route for IP ``version``: its next hop and output link."""
        family = 10 if version == 6 else 2
        for msg in self.ipr.route("dump", family=family):
            if msg["dst_len"] != 0 or msg.get_attr("RTA_TABLE") != 254:
                continue
            gateway = msg.get_attr("RTA_GATEWAY")
            oif = msg.get_attr("RTA_OIF")
            if gateway is not None and oif is not None:
                return ipaddress.ip_address(gateway), oif
        return None

    def summaries(self) -> Iterator[LinkSummary]:
        for msg in self.ipr.link("dump"):
            info = msg.get_attr("IFLA_LINKINFO")
            yield LinkSummary(
                index=msg["index"],
                name=msg.get_attr("IFLA_IFNAME"),
                kind=info.get_attr("IFLA_INFO_KIND") if info else None,
                alias=msg.get_attr("IFLA_IFALIAS"),
                master=msg.get_attr("IFLA_MASTER"),
            )


class NamespaceNetwork:
    """The OS layer's handle on one namespace (the one current at construction): links,
    addresses, routes and sysctls there, through a netlink socket per thread. ``close`` closes
    the sockets still open and makes the handle unusable."""

    def __init__(self) -> None:
        self.namespace = current_thread_namespace()
        self._local = threading.local()
        self._open: weakref.WeakSet[_Links] = weakref.WeakSet()  # a thread's goes with it
        self._open_lock = threading.Lock()
        self._closed = False
        self._background: queue.Queue[Callable[[], None]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    def close(self) -> None:
        self.drain_deletions()
        with self._open_lock:
            self._closed = True
            still_open = list(self._open)
        for links in still_open:
            links.ipr.close()
        self.namespace.close()

    def delete_link_later(self, index: int) -> None:
        """Take a link down now and delete it on a background thread. Deleting a device waits
        for an RCU grace period in the kernel (synchronize_net, ~40 ms here) that the caller
        need not wait for; a device that is down already carries no routes."""
        self.links.set_down(index)
        self.later(lambda: self.links.delete(index), f"deleting link {index}")

    def later(self, action: Callable[[], None], what: str) -> None:
        """Run ``action`` on this handle's background thread, after what was handed to it
        before (``drain_deletions`` waits for all of it); a failure is logged as ``what`` and
        never stops the thread."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run_background, name="cnm-link-background", daemon=True
                )
                self._worker.start()

        def logged() -> None:
            try:
                action()
            except Exception:
                log.exception("%s", what)

        self._background.put(logged)

    def drain_deletions(self) -> None:
        """Wait until everything handed to ``delete_link_later`` and ``later`` is done."""
        self._background.join()

    def _run_background(self) -> None:
        while True:
            action = self._background.get()
            try:
                action()
            finally:
                self._background.task_done()

    @property
    def links(self) -> _Links:
        links = getattr(self._local, "links", None)
        if links is None:
            with self._open_lock:
                if self._closed:
                    raise CnmError(f"the handle on namespace {self.namespace.path} is closed")
                with self.namespace.entered():
                    links = _Links(_open_socket())
                self._open.add(links)
            self._local.links = links
        return links

    def pin_at(self, path: str) -> str:
        """Bind-mount this namespace at ``path`` (the key of host-network sandboxes)."""
        with self.inside():
            pin_current_netns(path)
        return path

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Run the body with the calling thread in this namespace (for sysctls)."""
        with self.namespace.entered():
            yield

    def create_bridge(
        self, name: str, *, mtu: int | None, alias: str, mac: str | None = None
    ) -> int:
        """Create a bridge tagged with ``alias``. The kernel ignores IFLA_IFALIAS in
        RTM_NEWLINK, so the alias is set by a second message. A bridge given its ``mac`` keeps
        it; one without takes the lowest MAC of its ports whenever they change
        (br_stp_recalculate_bridge_id), which changes its gateway's MAC under the containers."""
        spec: dict[str, object] = {"ifname": name, "kind": "bridge"}
        if mtu is not None:
            spec["mtu"] = mtu
        if mac is not None:
            spec["address"] = mac
        try:
            faults.step("create link")
            self.links.ipr.link("add", **spec)
        except NetlinkError as err:
            raise netlink_error(err, f"create bridge {name}") from err
        index = self.links.index_of(name)
        if index is None:
            raise CnmError(f"bridge {name} vanished right after creation")
        try:
            self.links.ipr.link("set", index=index, ifalias=alias)
        except NetlinkError as err:
            self.links.delete(index)
            raise netlink_error(err, f"tag bridge {name}") from err
        return index

    def create_veth(
        self,
        host_name: str,
        peer_name: str,
        peer_namespace: NetNamespace,
        *,
        master: int | None,
        mtu: int | None,
        peer_mac: str | None,
        ipv6: bool,
        own_link_local: bool = False,
    ) -> int:
        """Create a veth whose near end is enslaved to ``master`` (if any) and up, and whose
        peer is born inside ``peer_namespace`` as ``peer_name`` (left down for the sandbox to
        configure). With ``own_link_local`` the near end comes up with IPv6 but no generated
        link-local address, for the caller to give it its own (``use_own_link_local``)."""
        peer: dict[str, object] = {"ifname": peer_name, "net_ns_fd": peer_namespace.fd}
        spec: dict[str, object] = {"ifname": host_name, "kind": "veth", "peer": peer}
        if master is not None:
            spec["master"] = master
        if mtu is not None:
            spec["mtu"] = mtu
            peer["mtu"] = mtu
        if peer_mac is not None:
            peer["address"] = peer_mac
        try:
            faults.step("create link")
            self.links.ipr.link("add", **spec)
        except NetlinkError as err:
            raise netlink_error(err, f"create veth {host_name}") from err
        index = self.links.index_of(host_name)
        if index is None:
            raise CnmError(f"veth {host_name} vanished right after creation")
        try:
            if own_link_local:
                self.use_own_link_local(host_name)
            elif not ipv6:
                with self.inside():
                    write_sysctl(f"net.ipv6.conf.{host_name}.disable_ipv6", "1")
            self.links.set_up(index)
        except Exception:
            self.links.delete(index)
            raise
        return index

    def use_own_link_local(self, name: str) -> None:
        """Before the link ``name`` goes up: IPv6 on, even where the namespace's default is
        off, and no link-local address generated (``addr_gen_mode`` 1) beside the one the
        caller adds. A kernel without IPv6 (ipv6.disable=1) has no such settings: refused."""
        try:
            with self.inside():
                write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "0")
                write_sysctl(f"net.ipv6.conf.{name}.addr_gen_mode", "1")
        except FileNotFoundError:
            raise InvalidParameter(
                f"link {name} needs IPv6 link-local addresses, and IPv6 is disabled in this "
                "kernel (ipv6.disable=1)"
            ) from None

    def move_into(
        self, name: str, target: NetNamespace, new_name: str, mac: str | None = None
    ) -> None:
        """Move the host link ``name`` into ``target`` as ``new_name`` (with ``mac``)."""
        index = self.links.index_of(name)
        if index is None:
            raise NotFound(f"link {name} not found in the host namespace")
        self.links.move(index, target, new_name, mac)

    def tag(self, index: int, alias: str) -> None:
        """Set the link's alias (IFLA_IFALIAS): the kernel ignores it in RTM_NEWLINK."""
        try:
            self.links.ipr.link("set", index=index, ifalias=alias)
        except NetlinkError as err:
            raise netlink_error(err, f"tag link {index}") from err

    def supports_link_kind(self, kind: str) -> bool:
        """Whether this kernel can make links of ``kind``, for kinds that need a lower link
        (vlan, macvlan, ipvlan): see the module note. Nothing is created."""
        try:
            self.links.ipr.link("add", ifname="cnm-probe", kind=kind)
        except NetlinkError as err:
            return err.code != errno.EOPNOTSUPP
        index = self.links.index_of("cnm-probe")  # a kind that needs no lower link after all
        if index is not None:
            self.links.delete(index)
        return True

    def create_vlan(self, name: str, *, parent: int, vlan_id: int, alias: str) -> int:
        """An 802.1Q sub-interface of ``parent`` tagged with ``alias``, up."""
        try:
            faults.step("create link")
            self.links.ipr.link("add", ifname=name, kind="vlan", link=parent, vlan_id=vlan_id)
        except NetlinkError as err:
            raise netlink_error(err, f"create VLAN sub-interface {name}") from err
        index = self.links.index_of(name)
        if index is None:
            raise CnmError(f"VLAN sub-interface {name} vanished right after creation")
        try:
            self.tag(index, alias)
            self.links.set_up(index)
        except Exception:
            self.links.delete(index)
            raise
        return index

    def create_macvlan(
        self,
        name: str,
        namespace: NetNamespace,
        *,
        parent: int,
        mode: str,
        mac: str | None,
        mtu: int | None,
    ) -> None:
        """A macvlan child of ``parent`` born inside ``namespace`` as ``name`` (left down for
        the sandbox to configure). The kernel's EINVAL (a mode the parent's other children
        rule out, e.g. a second passthru child) comes back as InvalidParameter."""
        if mode not in MACVLAN_MODES:
            raise InvalidParameter(f"unknown macvlan mode {mode!r}")
        spec: dict[str, object] = {
            "ifname": name,
            "kind": "macvlan",
            "link": parent,
            "macvlan_mode": mode,
            "net_ns_fd": namespace.fd,
        }
        if mac is not None:
            spec["address"] = mac
        if mtu is not None:
            spec["mtu"] = mtu
        try:
            faults.step("create link")
            self.links.ipr.link("add", **spec)
        except NetlinkError as err:
            raise netlink_error(err, f"create macvlan {name} on link {parent}") from err

    def on_link_networks(self) -> list[IPNetwork]:
        """Destinations of the host's directly connected routes in the main table (for IPAM to
        avoid). A strict-checking socket lets the kernel filter by table, so the local table's
        three routes per address are never sent or parsed."""
        found: list[IPNetwork] = []
        with self.inside():
            ipr = IPRoute(groups=0, strict_check=True)
        try:
            for family in (2, 10):
                for msg in ipr.route("dump", family=family, table=254):
                    # On-link: a unicast route to a prefix with no next hop. (IPv6 connected
                    # routes carry universe scope, so the scope alone does not tell.)
                    if msg["dst_len"] == 0 or msg["type"] != 1 or msg.get_attr("RTA_GATEWAY"):
                        continue
                    dst = msg.get_attr("RTA_DST")
                    if dst is not None:
                        found.append(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
        finally:
            ipr.close()
        return found


class HostNetwork(NamespaceNetwork):
    """The handle on the host namespace: the daemon's own (in tests, a throwaway namespace
    acting as the host). Closing it also cancels the announcements still queued."""

    def close(self) -> None:
        super().close()
        cancel_announcements()  # no send after the controller stopped


def interface_addresses() -> dict[str, list[IPAddress]]:
    """The addresses of the calling thread's namespace, by interface name (for checking a
    ``--cluster-advertise`` value: an address or interface of this host)."""
    found: dict[str, list[IPAddress]] = {}
    ipr = _open_socket()
    try:
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in ipr.link("dump")}
        for msg in ipr.addr("dump"):
            address = msg.get_attr("IFA_ADDRESS")
            name = names.get(msg["index"])
            if address and name:
                found.setdefault(name, []).append(ipaddress.ip_address(address.split("%")[0]))
    finally:
        ipr.close()
    return found


class SandboxNetwork:
    """Netlink operations inside one sandbox namespace. Open it for one operation and close it:
    a socket per sandbox kept open would cost a descriptor per container."""

    def __init__(self, namespace: NetNamespace) -> None:
        self.namespace = namespace
        with namespace.entered():
            self.links = _Links(_open_socket())

    def close(self) -> None:
        self.links.ipr.close()

    def __enter__(self) -> SandboxNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def inside(self) -> Iterator[None]:
        with self.namespace.entered():
            yield

    def bring_up_loopback(self, ipv6: bool) -> None:
        """Loopback up; with ``ipv6`` False, IPv6 off for interfaces created here later."""
        if not ipv6:
            with self.inside():
                write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        self.links.set_up(1)

    def configure_interface(self, ifname: str, addresses: list[IPInterface]) -> int:
        """Address the link ``ifname`` (its MAC was set when it was made) and bring it up."""
        index = self.links.index_of(ifname)
        if index is None:
            raise CnmError(f"interface {ifname} is missing from sandbox {self.namespace.path}")
        if any(a.version == 6 for a in addresses):
            with self.inside():
                write_sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", "0")
        for address in addresses:
            self.links.add_address(index, address)
        self.links.set_up(index)
        return index

    def counters(self) -> dict[str, dict[str, int]]:
        """Every interface's traffic counters but loopback's (the kernel's 64-bit ones), by
        name: rx/tx bytes, packets, errors, dropped."""
        found: dict[str, dict[str, int]] = {}
        for msg in self.links.ipr.link("dump"):
            if msg["flags"] & IFF_LOOPBACK:
                continue
            stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS")
            if stats is None:
                continue
            found[msg.get_attr("IFLA_IFNAME")] = {
                name: int(stats.get(name, 0))
                for name in (
                    "rx_bytes",
                    "rx_packets",
                    "rx_errors",
                    "rx_dropped",
                    "tx_bytes",
                    "tx_packets",
                    "tx_errors",
                    "tx_dropped",
                )
            }
        return found

    def announce(self, ifname: str, index: int, addresses: list[IPInterface]) -> None:
        """Announce the link's addresses to its neighbours, off the caller's path
        (``cnm.osl.announce``)."""
        details = self.links.details(ifname)
        if details is None or not details.mac or not addresses:
            return
        with self.inside():  # the namespace's own file, not its bind mount (see announce)
            namespace_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        announce(self.namespace.path, namespace_fd, ifname, index, details.mac, addresses)

    def free_name(self, prefix: str) -> str:
        """The lowest ``<prefix><n>`` no link here carries."""
        n = 0
        while self.links.index_of(f"{prefix}{n}") is not None:
            n += 1
        return f"{prefix}{n}"

    def move_out(self, name: str, target: NetNamespace, new_name: str) -> None:
        """Move the link ``name`` out of this sandbox into ``target`` as ``new_name``; a
        link already gone is not an error."""
        index = self.links.index_of(name)
        if index is not None:
            self.links.move(index, target, new_name)

    def set_default_route(self, gateway: IPAddress, oif: int) -> None:
        default = ipaddress.ip_network("::/0" if gateway.version == 6 else "0.0.0.0/0")
        self.links.add_route(default, gateway=gateway, oif=oif, replace=True)

    def remove_default_route(self, version: int) -> None:
        self.links.delete_route(ipaddress.ip_network("::/0" if version == 6 else "0.0.0.0/0"))


@contextmanager
def sandbox_network(sandbox_key: str) -> Iterator[SandboxNetwork]:
    """A ``SandboxNetwork`` for the namespace bind-mounted at ``sandbox_key``, for one
    operation; the namespace's descriptor and the socket are closed afterwards."""
    namespace = NetNamespace(sandbox_key)
    try:
        with SandboxNetwork(namespace) as sandbox_net:
            yield sandbox_net
    finally:
        namespace.close()
