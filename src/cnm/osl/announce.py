"""Announcing a link's addresses to its neighbours, as Docker 28 does when an endpoint joins.

An address handed out again may come with another MAC than its last owner's (a user-given
``--mac-address``; or another driver's). A neighbour that cached the old owner keeps sending
to the old MAC until its entry goes stale and is probed again, 30-45 s with Linux's defaults
(base_reachable_time 30 s, randomised; then delay_first_probe_time). An announcement fixes that
at once:

* IPv4: a gratuitous ARP (RFC 5227 section 3's announcement: a broadcast request whose sender
  and target protocol addresses are both the address), from an AF_PACKET socket. Linux updates
  an existing neighbour entry from any ARP packet that names its address as sender, and a
  gratuitous one overrides even within ``locktime``; ``arp_accept`` only decides whether a new
  entry is created.
* IPv6: an unsolicited neighbour advertisement (RFC 4861 section 7.2.6) to all-nodes
  (ff02::1), Override set, with the Target Link-Layer Address option; hop limit 255, or
  receivers drop it (section 7.1.2). Linux replaces the cached link-layer address of an
  existing entry and marks it STALE, so the next packet goes to the new MAC. The kernel sends
  one only after DAD, which cnm's addresses skip (IPAM made them unique).

Why not the kernel's ``arp_notify``: it announces when the interface comes up, which is before
the bridge port of its peer forwards (the port learns of the carrier from linkwatch, a moment
later), so the bridge drops it. For the same reason each announcement is sent again after
``RESEND_S`` (Docker 28 repeats its own too) by a thread of this module's, which enters the
namespace again for it (none is sent once the sandbox is gone). No socket is kept: one would
keep a deleted sandbox's namespace, and the address still configured in it, alive. Sockets are
closed on threads of their own: closing a packet socket waits for an RCU grace period
(``synchronize_net``), tens of milliseconds on a busy machine, which a join should not wait
for. A lost announcement leaves the old behaviour, not a failure.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from cnm.osl.namespace import NetNamespace, is_netns_mount
from cnm.osl.syscalls import setns

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_HW_ETHER = 1
BROADCAST = b"\xff" * 6
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
ALL_NODES = "ff02::1"
RESEND_S = (0.1, 1.0)  # after the first announcement


def arp_announcement(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of an ARP announcement of ``address`` at ``mac``."""
    ethernet = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARP_HW_ETHER, ETH_P_IP, 6, 4, ARP_REQUEST)
    return ethernet + arp + mac + address.packed + b"\x00" * 6 + address.packed


def neighbour_advertisement(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """The ICMPv6 message of an unsolicited NA of ``address`` at ``mac`` (checksum left 0)."""
    header = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac
    return header + address.packed + option


def announce(
    netns: str,
    ifname: str,
    ifindex: int,
    mac: str,
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
) -> None:
    """Announce each address on the link ``ifname`` (index ``ifindex``, MAC ``mac``) of the
    namespace at ``netns``, which the calling thread is in: now, and again after ``RESEND_S``."""
    announcement = _Announcement(netns, ifname, ifindex, bytes.fromhex(mac.replace(":", "")))
    for address in addresses:
        announcement.send(address)
        _REPEATER.add(announcement, address)


@dataclass(frozen=True)
class _Announcement:
    netns: str
    ifname: str
    ifindex: int
    mac: bytes

    def send(self, address: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        """One announcement, from the calling thread's namespace."""
        if isinstance(address, ipaddress.IPv4Interface):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing
            try:
                sock.sendto(arp_announcement(self.mac, address.ip), (self.ifname, ETH_P_ARP))
            finally:
                threading.Thread(target=sock.close, name="cnm-announce-close", daemon=True).start()
            return
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            sock.bind((str(address.ip), 0, 0, self.ifindex))
            payload = neighbour_advertisement(self.mac, address.ip)
            sock.sendto(payload, (ALL_NODES, 0, 0, self.ifindex))


Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class _Repeater:
    """Sends each announcement again at ``RESEND_S``, on one thread started when first
    needed."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, int, _Announcement, Address]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, announcement: _Announcement, address: Address, sent: int = 0) -> None:
        delay = RESEND_S[sent] - (RESEND_S[sent - 1] if sent else 0.0)
        with self._changed:
            due = (time.monotonic() + delay, next(self._order), sent, announcement, address)
            heapq.heappush(self._due, due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cnm-announce", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _loop(self) -> None:
        # A thread starts in the namespace of the thread that made it, here a sandbox's, and
        # would keep that namespace alive: this one lives in the process's own.
        home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(home)
        finally:
            os.close(home)
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, sent, announcement, address = heapq.heappop(self._due)
            if not is_netns_mount(announcement.netns):
                continue  # the sandbox is gone
            namespace = NetNamespace(announcement.netns)
            try:
                with namespace.entered():
                    announcement.send(address)
            except OSError:
                continue  # the namespace or the interface went away meanwhile
            finally:
                namespace.close()
            if sent + 1 < len(RESEND_S):
                self.add(announcement, address, sent + 1)


_REPEATER = _Repeater()
