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
later), so the bridge drops it. For the same reason each announcement is sent three times
(``SEND_AT_S`` after the join; Docker 28 repeats its own too).

None of it is the join's work: ``announce`` only queues. The first sends go to a few sender
threads at once, through a descriptor of the namespace itself (not of its bind mount, which a
descriptor would keep busy for a plain umount); a timer thread hands them the later ones,
for which they enter the sandbox's namespace by its mount while it exists (none is sent once
the sandbox is gone). Each send makes a socket, sends and closes it. Closing a packet socket
waits for an RCU grace period (``synchronize_net``), tens of milliseconds on a busy machine;
several senders wait out their grace periods together. No socket outlives its send: one would
keep a deleted sandbox's namespace, and the address still configured in it, alive. These
threads live in the process's own namespace: a thread starts in the namespace of the thread
that made it, a sandbox's when a join made it, and would keep that one alive.
A lost announcement leaves the old behaviour, not a failure.
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
SEND_AT_S = (0.0, 0.1, 1.0)  # after the join
SENDERS = 4


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
    namespace_fd: int,
    ifname: str,
    ifindex: int,
    mac: str,
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
) -> None:
    """Queue the announcements of each address on the link ``ifname`` (index ``ifindex``, MAC
    ``mac``) of the namespace at ``netns``, sent at ``SEND_AT_S``. ``namespace_fd`` (which
    this takes over) is the namespace's own file, not its bind mount: the first sends go through
    it, so that they never keep the mount busy (a plain umount of a sandbox's key fails while a
    descriptor opened through it is open); the later ones open the mount while it exists."""
    announcement = _Announcement(netns, ifname, ifindex, bytes.fromhex(mac.replace(":", "")))
    _TIMER.send_now(announcement, addresses, namespace_fd)
    for address in addresses:
        _TIMER.add(announcement, address, sent=1)


def cancel() -> None:
    """Drop the announcements not sent yet (the host network is closing: a controller stops)."""
    _TIMER.clear()


Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@contextmanager
def _inside(namespace_fd: int) -> Iterator[None]:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(namespace_fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


@dataclass(frozen=True)
class _Announcement:
    netns: str
    ifname: str
    ifindex: int
    mac: bytes

    def send_through(self, addresses: list[Address], namespace_fd: int) -> None:
        """Each announcement, from inside the namespace of ``namespace_fd`` (closed after)."""
        try:
            for address in addresses:
                with _inside(namespace_fd):
                    sock = self._socket(address)
                self._send(sock, address)
        except OSError:
            pass  # the interface went away meanwhile
        finally:
            os.close(namespace_fd)

    def send(self, address: Address) -> None:
        """One announcement, from inside the namespace, if it still exists."""
        if not is_netns_mount(self.netns):
            return  # the sandbox is gone
        namespace = NetNamespace(self.netns)
        try:
            with namespace.entered():
                sock = self._socket(address)
            self._send(sock, address)
        except OSError:
            pass  # the namespace or the interface went away meanwhile
        finally:
            namespace.close()

    @staticmethod
    def _socket(address: Address) -> socket.socket:
        if isinstance(address, ipaddress.IPv4Interface):
            return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing
        return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)

    def _send(self, sock: socket.socket, address: Address) -> None:
        with sock:
            if isinstance(address, ipaddress.IPv4Interface):
                sock.sendto(arp_announcement(self.mac, address.ip), (self.ifname, ETH_P_ARP))
                return
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            sock.bind((str(address.ip), 0, 0, self.ifindex))
            message = neighbour_advertisement(self.mac, address.ip)
            sock.sendto(message, (ALL_NODES, 0, 0, self.ifindex))


def _live_in_the_process_namespace() -> None:
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(home)
    finally:
        os.close(home)


class _Timer:
    """Hands each announcement to the senders at each of ``SEND_AT_S``, from one thread started
    when first needed."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, int, _Announcement, Address]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._senders = ThreadPoolExecutor(
            SENDERS, "cnm-announce", initializer=_live_in_the_process_namespace
        )

    def send_now(
        self, announcement: _Announcement, addresses: list[Address], namespace_fd: int
    ) -> None:
        self._senders.submit(announcement.send_through, addresses, namespace_fd)

    def add(self, announcement: _Announcement, address: Address, sent: int) -> None:
        delay = SEND_AT_S[sent] - (SEND_AT_S[sent - 1] if sent else 0.0)
        with self._changed:
            due = (time.monotonic() + delay, next(self._order), sent, announcement, address)
            heapq.heappush(self._due, due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cnm-announce", daemon=True)
                self._thread.start()
            self._changed.notify()

    def clear(self) -> None:
        with self._changed:
            self._due.clear()

    def _loop(self) -> None:
        _live_in_the_process_namespace()
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, sent, announcement, address = heapq.heappop(self._due)
            self._senders.submit(announcement.send, address)
            if sent + 1 < len(SEND_AT_S):
                self.add(announcement, address, sent + 1)


_TIMER = _Timer()
