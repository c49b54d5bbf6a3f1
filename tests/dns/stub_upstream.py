"""A stub upstream DNS server for the forwarding tests: it never forwards, and each address it
listens on (UDP and TCP, port 53) behaves one way.

    stub_upstream.py --log FILE ADDRESS=BEHAVIOUR...

Behaviours: ``ok`` (an A record 198.51.100.7 for any name; NXDOMAIN for names starting with
"missing"), ``nxdomain``, ``servfail``, ``drop`` (never answers), ``slow`` (as ok, after
SLOW_S), ``truncate`` (over UDP an empty reply with TC set; over TCP 40 A records, too many for
512 octets). Every query received is logged as ``ADDRESS PROTO NAME`` to the log file. It
prints "ready" once every socket is bound, and runs until SIGTERM; the test stops it by PID.
Run it in the namespace it should serve (it inherits the test thread's).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

SLOW_S = 1.5
ANSWER = "198.51.100.7"


def _reply(wire: bytes, behaviour: str, tcp: bool) -> bytes | None:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    name = query.question[0].name
    if behaviour == "nxdomain" or (
        behaviour in ("ok", "slow") and name.labels[0].startswith(b"missing")
    ):
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif behaviour == "servfail":
        response.set_rcode(dns.rcode.SERVFAIL)
    elif behaviour == "truncate" and not tcp:
        response.flags |= dns.flags.TC
    elif query.question[0].rdtype == dns.rdatatype.A:
        count = 40 if behaviour == "truncate" else 1
        addresses = [f"198.51.100.{i + 7}" for i in range(count)]
        response.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", addresses))
    return response.to_wire()


class Stub:
    def __init__(self, address: str, behaviour: str, log: str) -> None:
        self.address = address
        self.behaviour = behaviour
        self.log = log
        self.lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((address, 53))
        self.tcp.listen(16)

    def record(self, proto: str, wire: bytes) -> None:
        try:
            name = dns.message.from_wire(wire).question[0].name.to_text()
        except Exception:
            name = "?"
        with self.lock, open(self.log, "a") as log:
            log.write(f"{self.address} {proto} {name}\n")

    def serve_udp(self) -> None:
        while True:
            wire, peer = self.udp.recvfrom(4096)
            self.record("udp", wire)
            threading.Thread(target=self.answer_udp, args=(wire, peer), daemon=True).start()

    def answer_udp(self, wire: bytes, peer: tuple[str, int]) -> None:
        if self.behaviour == "drop":
            return
        if self.behaviour == "slow":
            time.sleep(SLOW_S)
        reply = _reply(wire, self.behaviour, tcp=False)
        if reply is not None:
            self.udp.sendto(reply, peer)

    def serve_tcp(self) -> None:
        while True:
            conn, _ = self.tcp.accept()
            threading.Thread(target=self.answer_tcp, args=(conn,), daemon=True).start()

    def answer_tcp(self, conn: socket.socket) -> None:
        with conn:
            size = int.from_bytes(_read(conn, 2))
            wire = _read(conn, size)
            self.record("tcp", wire)
            if self.behaviour == "drop":
                time.sleep(30)
                return
            if self.behaviour == "slow":
                time.sleep(SLOW_S)
            reply = _reply(wire, self.behaviour, tcp=True)
            if reply is not None:
                conn.sendall(len(reply).to_bytes(2) + reply)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError
        data += chunk
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("listen", nargs="+", metavar="ADDRESS=BEHAVIOUR")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for spec in args.listen:
        address, _, behaviour = spec.partition("=")
        stub = Stub(address, behaviour, args.log)
        threading.Thread(target=stub.serve_udp, daemon=True).start()
        threading.Thread(target=stub.serve_tcp, daemon=True).start()
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
