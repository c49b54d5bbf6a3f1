"""Announcing a link's addresses to its neighbours, as Docker 28 does when an endpoint joins.

An address handed out again may come with another MAC than its last owner's (a user-given
``--mac-address``; or another driver's). A neighbour that cached the old owner keeps sending
to the old MAC until its entry goes stale and is probed again, 30-45 s with Linux's defaults
(base_reachable_time 30 s, randomised; then delay_first_probe_time). An announcement fixes that
at once:

* IPv4: an ARP announcement (RFC 5227 section 3), a broadcast ARP request whose sender and
  target protocol addresses are both the address. Linux updates an existing neighbour entry
  from any ARP packet that names its address as sender, and a gratuitous one overrides even
  within ``locktime``; ``arp_accept`` only decides whether a new entry is created.
* IPv6: an unsolicited neighbour advertisement (RFC 4861 section 7.2.6) to all-nodes
  (ff02::1), Override set, with the Target Link-Layer Address option; hop limit 255, or
  receivers drop it (section 7.1.2). Linux replaces the cached link-layer address of an
  existing entry and marks it STALE, so the next packet is sent to the new MAC.

One announcement is sent per address at join (Docker 28 repeats its own; a lost one leaves the
old behaviour, not a failure). The sockets are opened by the calling thread, which must be
inside the link's namespace: a socket belongs to the namespace of the thread that makes it.
An ARP announcement needs an AF_PACKET socket (the kernel builds no ARP request on demand);
the NA goes through a raw ICMPv6 socket, which fills in the checksum.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_HW_ETHER = 1
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
ALL_NODES = "ff02::1"
BROADCAST = b"\xff" * 6


def arp_announcement(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of an ARP announcement of ``address`` at ``mac``."""
    ethernet = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARP_HW_ETHER, ETH_P_IP, 6, 4, ARP_REQUEST)
    arp += mac + address.packed + b"\x00" * 6 + address.packed
    return ethernet + arp


def neighbour_advertisement(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """The ICMPv6 message of an unsolicited NA of ``address`` at ``mac`` (checksum left 0)."""
    header = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac
    return header + address.packed + option


def announce(
    ifname: str,
    ifindex: int,
    mac: str,
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
) -> None:
    """Send an announcement of each address on the link ``ifname`` (index ``ifindex``, MAC
    ``mac``)."""
    raw_mac = bytes.fromhex(mac.replace(":", ""))
    for address in addresses:
        if isinstance(address, ipaddress.IPv4Interface):
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                sock.bind((ifname, ETH_P_ARP))
                sock.send(arp_announcement(raw_mac, address.ip))
            continue
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.bind((str(address.ip), 0, 0, ifindex))
            sock.sendto(neighbour_advertisement(raw_mac, address.ip), (ALL_NODES, 0, 0, ifindex))
