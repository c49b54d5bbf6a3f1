"""Watching nftables for changes made by other programs (``nft flush table inet cnm``, Docker's
iptables-nft calls), so the firewall can put its rules back and resync its Docker step.

Why it works: every committed nftables transaction is announced on the netlink multicast group
NFNLGRP_NFTABLES of its namespace (what ``nft monitor`` reads): one message per changed object,
each carrying its table's name as attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE... are all 1), then one NEWGEN
message. Every one of them carries in its header (nlmsg_pid) the netlink port id of the socket
that sent the batch, so changes sent through the firewall's own libnftables socket are told
apart from everyone else's without trusting process ids (which differ across pid namespaces).
When the socket overflows (ENOBUFS) changes may have been missed, so the callback is told
every table may have changed.

The socket is opened inside the namespace being watched, and a netlink socket stays bound to the
namespace it was opened in.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable

from cnm.osl.namespace import NetNamespace

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NFTA_TABLE = 1  # the table name attribute of every object message
RECEIVE_BUFFER = 8 << 20
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
EVERYTHING = frozenset({("*", "*")})

Changed = Callable[[frozenset[tuple[str, str]]], None]


class NftMonitor:
    """Calls ``changed({(family, table), ...})`` from its own thread after each transaction whose
    sender ``is_ours(port id)`` does not claim (``EVERYTHING`` after an overflow)."""

    def __init__(
        self, namespace: NetNamespace, is_ours: Callable[[int], bool], changed: Changed
    ) -> None:
        self._is_ours = is_ours
        self._changed = changed
        with namespace.entered():
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock.bind((0, 0))
        self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="cnm-nft-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        self._sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _loop(self) -> None:
        touched: set[tuple[str, str]] = set()
        while True:
            ready, _, _ = select.select([self._sock.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = self._sock.recv(1 << 20)
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    touched.clear()
                    self._notify(EVERYTHING)
                    continue
                log.exception("nftables monitor")
                return
            for msg_type, port_id, payload in _messages(data):
                if msg_type >> 8 != NFNL_SUBSYS_NFTABLES or len(payload) < 4:
                    continue
                if msg_type & 0xFF == NFT_MSG_NEWGEN:
                    if touched and not self._is_ours(port_id):
                        self._notify(frozenset(touched))
                    touched.clear()
                    continue
                attrs = _attributes(payload[4:])
                if NFTA_TABLE in attrs:
                    family = FAMILIES.get(payload[0], str(payload[0]))
                    touched.add((family, attrs[NFTA_TABLE].rstrip(b"\0").decode()))

    def _notify(self, tables: frozenset[tuple[str, str]]) -> None:
        try:
            self._changed(tables)
        except Exception:
            log.exception("reacting to a foreign nftables change")


def _messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, sender's port id, payload) of each netlink message in ``data``."""
    found = []
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type, _, _, port_id = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        found.append((msg_type, port_id, data[offset + 16 : offset + length]))
        offset += (length + 3) & ~3
    return found


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + 4 <= len(data):
        length, attr_type = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[attr_type & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found
