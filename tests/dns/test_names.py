"""Names cnm owns: which names resolve, for whom, in what order, and how they follow the
sandboxes' lifecycle. Every query is a real one, sent from inside a sandbox to 127.0.0.11."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from cnm.controller import Controller, ControllerConfig
from cnm.dns.resolver import Resolver, ResolverConfig
from cnm.drivers.bridge import host_veth_name
from cnm.model import EndpointOptions, Sandbox
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

from .queries import (
    HOST_STUB,
    Stubs,
    addresses,
    ask,
    client_socket,
    make_network,
    make_sandbox,
    send_raw,
)


def ip_of(controller: Controller, sandbox: Sandbox, network: str) -> str:
    network_id = controller.network(network).id
    endpoint = next(
        e for e in controller.endpoints(sandbox_id=sandbox.id) if e.network_id == network_id
    )
    assert endpoint.ipv4_address is not None
    return str(ipaddress.ip_interface(endpoint.ipv4_address).ip)


def test_container_name_aliases_short_id_hostname_and_network_suffix(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "front", "10.31.0.0/24")
    web = make_sandbox(
        controller, "web", "front", aliases={"front": ["www", "Api"]}, hostname="web-host"
    )
    client = make_sandbox(controller, "client", "front")
    expected = [ip_of(controller, web, "front")]
    names = ["web", "www", "api", web.container_id[:12], "web-host", "web.front", "www.front"]
    for name in [*names, "WEB", "Www.FRONT", web.container_id[:12].upper()]:
        response = ask(client, name)
        assert response.rcode() == dns.rcode.NOERROR, name
        assert addresses(response) == expected, name
        assert response.flags & dns.flags.AA
        assert response.question[0].name.to_text() == name + "."  # the asker's case kept
    assert ask(client, "nosuch").rcode() == dns.rcode.NXDOMAIN
    assert ask(client, web.container_id[:11]).rcode() == dns.rcode.NXDOMAIN


def test_same_alias_on_two_networks_means_two_containers(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    stubs(f"{HOST_STUB}=nxdomain")
    make_network(controller, "red", "10.32.0.0/24")
    make_network(controller, "blue", "10.33.0.0/24")
    make_network(controller, "green", "10.34.0.0/24")
    red_db = make_sandbox(controller, "red-db", "red", aliases={"red": ["db"]})
    blue_db = make_sandbox(controller, "blue-db", "blue", aliases={"blue": ["db"]})
    on_red = make_sandbox(controller, "on-red", "red")
    on_blue = make_sandbox(controller, "on-blue", "blue")
    on_green = make_sandbox(controller, "on-green", "green")
    on_both = make_sandbox(controller, "on-both", "red", "blue")  # red joined first
    red_ip, blue_ip = ip_of(controller, red_db, "red"), ip_of(controller, blue_db, "blue")

    assert addresses(ask(on_red, "db")) == [red_ip]
    assert addresses(ask(on_blue, "db")) == [blue_ip]
    assert ask(on_green, "db").rcode() == dns.rcode.NXDOMAIN
    assert ask(on_green, "red-db").rcode() == dns.rcode.NXDOMAIN
    assert ask(on_red, "blue-db").rcode() == dns.rcode.NXDOMAIN
    # <name>.<network> of a network the asker is not on is not ours to answer: it goes upstream
    assert ask(on_red, "db.blue").rcode() == dns.rcode.NXDOMAIN
    # on both: the first network in the sandbox's order (by name here, not by join) answers
    # the bare name, as libnetwork resolves; the suffix picks one
    assert addresses(ask(on_both, "db")) == [blue_ip]
    assert addresses(ask(on_both, "db.red")) == [red_ip]
    assert addresses(ask(on_both, "db.blue")) == [blue_ip]


def test_one_alias_on_several_containers_rotates(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "pool", "10.35.0.0/24")
    members = [
        make_sandbox(controller, f"worker{i}", "pool", aliases={"pool": ["workers"]})
        for i in range(4)
    ]
    client = make_sandbox(controller, "client", "pool")
    expected = sorted(ip_of(controller, member, "pool") for member in members)
    orders = set()
    for _ in range(8):
        answer = addresses(ask(client, "workers"))
        assert sorted(answer) == expected
        orders.add(tuple(answer))
    assert len({order[0] for order in orders}) == 4  # each address came first in turn
    answer = addresses(ask(client, "workers", tcp=True))
    assert sorted(answer) == expected


def test_aaaa_for_ipv6_endpoints_and_nodata_otherwise(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "dual", "10.36.0.0/24", enable_ipv6=True, ipv6_subnet="fd00:36::/64")
    make_network(controller, "v4only", "10.37.0.0/24")
    web = make_sandbox(controller, "web6", "dual")
    old = make_sandbox(controller, "web4", "v4only")
    client = make_sandbox(controller, "client", "dual", "v4only")
    endpoint = controller.endpoints(sandbox_id=web.id)[0]
    assert endpoint.ipv6_address is not None
    assert addresses(ask(client, "web6", "AAAA"), "AAAA") == [
        str(ipaddress.ip_interface(endpoint.ipv6_address).ip)
    ]
    assert addresses(ask(client, "web6", "AAAA", tcp=True), "AAAA") == [
        str(ipaddress.ip_interface(endpoint.ipv6_address).ip)
    ]
    assert addresses(ask(client, "web6")) == [ip_of(controller, web, "dual")]
    nodata = ask(client, "web4", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert addresses(ask(client, "web4")) == [ip_of(controller, old, "v4only")]
    mx = ask(client, "web4", "MX")
    assert mx.rcode() == dns.rcode.NOERROR and not mx.answer
    both = ask(client, "web6", "ANY")
    assert sorted(rrset.rdtype for rrset in both.answer) == [1, 28]


def test_ptr_names_the_container_on_shared_networks_only(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs(f"{HOST_STUB}=nxdomain")
    make_network(controller, "dual", "10.38.0.0/24", enable_ipv6=True, ipv6_subnet="fd00:38::/64")
    make_network(controller, "other", "10.39.0.0/24")
    web = make_sandbox(controller, "web", "dual")
    hidden = make_sandbox(controller, "hidden", "other")
    client = make_sandbox(controller, "client", "dual")
    endpoint = controller.endpoints(sandbox_id=web.id)[0]
    for text in (endpoint.ipv4_address, endpoint.ipv6_address):
        assert text is not None
        reverse = ipaddress.ip_interface(text).ip.reverse_pointer
        response = ask(client, reverse, "PTR")
        assert [item.to_text() for rrset in response.answer for item in rrset] == ["web.dual."]
    reverse = ipaddress.ip_address(ip_of(controller, hidden, "other")).reverse_pointer
    assert ask(client, reverse, "PTR").rcode() == dns.rcode.NXDOMAIN  # from upstream
    assert any(reverse in line for line in upstream.queries())


def test_tcp_several_queries_on_one_connection(controller: Controller, resolver: Resolver) -> None:
    make_network(controller, "tcpnet", "10.40.0.0/24")
    web = make_sandbox(controller, "web", "tcpnet")
    client = make_sandbox(controller, "client", "tcpnet")
    queries = [dns.message.make_query(name, "A") for name in ("web", "nosuch", "WEB.tcpnet")]
    with client_socket(client, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.11", 53))
        sock.sendall(
            b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        )
        replies = []
        stream = sock.makefile("rb")
        for _ in queries:
            size = struct.unpack("!H", stream.read(2))[0]
            replies.append(dns.message.from_wire(stream.read(size)))
    assert [r.id for r in replies] == [q.id for q in queries]
    assert addresses(replies[0]) == [ip_of(controller, web, "tcpnet")]
    assert replies[1].rcode() == dns.rcode.NXDOMAIN
    assert addresses(replies[2]) == addresses(replies[0])


def test_an_rrset_too_big_for_udp_is_truncated_and_whole_over_tcp(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "crowd", "10.41.0.0/24")
    for i in range(34):
        make_sandbox(controller, f"m{i}", "crowd", aliases={"crowd": ["everyone"]})
    client = make_sandbox(controller, "client", "crowd")
    udp = ask(client, "everyone")
    assert udp.flags & dns.flags.TC
    assert 0 < len(addresses(udp)) < 34
    assert len(addresses(ask(client, "everyone", tcp=True))) == 34
    edns = ask(client, "everyone", use_edns=0, payload=1232)
    assert not edns.flags & dns.flags.TC and len(addresses(edns)) == 34


def test_connect_disconnect_and_delete_take_effect_before_returning(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "live", "10.42.0.0/24")
    make_network(controller, "spare", "10.43.0.0/24")
    client = make_sandbox(controller, "client", "live")
    late = make_sandbox(controller, "late", "spare")
    assert ask(client, "late").rcode() == dns.rcode.NXDOMAIN
    controller.connect("live", late.id, EndpointOptions(name="late", aliases=["newcomer"]))
    assert addresses(ask(client, "newcomer")) == [ip_of(controller, late, "live")]
    controller.disconnect("live", late.id)
    assert ask(client, "late").rcode() == dns.rcode.NXDOMAIN
    assert ask(client, "newcomer").rcode() == dns.rcode.NXDOMAIN
    controller.connect("live", late.id, EndpointOptions(name="late"))
    assert ask(client, "late").rcode() == dns.rcode.NOERROR
    controller.rename_endpoints(late.id, "renamed")
    assert ask(client, "late").rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(client, "renamed")) == [ip_of(controller, late, "live")]
    endpoint_ids = [e.id for e in controller.endpoints(sandbox_id=late.id)]
    controller.delete_sandbox(late.id)
    assert ask(client, "renamed").rcode() == dns.rcode.NXDOMAIN
    assert resolver.metrics()["Sandboxes"] == 1
    # Our listener let go of the namespace: the kernel freed it, and with it the veth pairs.
    deadline = time.monotonic() + 5
    while any(Path(f"/sys/class/net/{host_veth_name(i)}").exists() for i in endpoint_ids):
        assert time.monotonic() < deadline, "the deleted sandbox's namespace is still alive"
        time.sleep(0.05)


def test_resolv_conf_and_listener_follow_the_embedded_rule(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "user", "10.44.0.0/24")
    embedded = make_sandbox(controller, "embedded", "user")
    custom = make_sandbox(
        controller, "custom", "user", dns_search=["a.test"], dns_options=["timeout:2"]
    )
    plain = make_sandbox(controller, "plain", "user", embedded=False, dns=["192.0.2.9"])
    conf = controller.sandbox_file(embedded.id, "resolv.conf").read_text()
    assert conf == "nameserver 127.0.0.11\nsearch example.test\noptions ndots:0\n"
    conf = controller.sandbox_file(custom.id, "resolv.conf").read_text()
    assert conf == "nameserver 127.0.0.11\nsearch a.test\noptions timeout:2 ndots:0\n"
    conf = controller.sandbox_file(plain.id, "resolv.conf").read_text()
    assert conf == "nameserver 192.0.2.9\nsearch example.test\n"
    assert send_raw(plain, dns.message.make_query("embedded", "A").to_wire(), 0.3) is None
    assert addresses(ask(embedded, "plain")) == [ip_of(controller, plain, "user")]
    assert resolver.metrics()["Sandboxes"] == 2


def test_a_restarted_resolver_and_controller_serve_the_running_sandboxes(
    controller: Controller,
    resolver: Resolver,
    exec_root: Path,
    host_resolv_conf: Path,
    tmp_path: Path,
) -> None:
    make_network(controller, "keep", "10.45.0.0/24")
    web = make_sandbox(controller, "web", "keep", aliases={"keep": ["www"]})
    client = make_sandbox(controller, "client", "keep")
    expected = [ip_of(controller, web, "keep")]
    resolver.close()
    assert send_raw(client, dns.message.make_query("web", "A").to_wire(), 0.3) is None
    again = Resolver(controller, ResolverConfig())
    again.start()
    try:
        assert addresses(ask(client, "www")) == expected
    finally:
        again.close()
    # a daemon restart: a new controller restores from the store, then a new resolver
    controller.close()
    controller.store.close()  # type: ignore[attr-defined]
    store = SqliteStore(tmp_path / "cnm.db")
    restored = build_controller(
        ControllerConfig(exec_root=exec_root, host_resolv_conf=host_resolv_conf), store
    )
    restored.start()
    third = Resolver(restored, ResolverConfig())
    third.start()
    try:
        assert addresses(ask(client, "www")) == expected
        assert addresses(ask(client, "web.keep", tcp=True)) == expected
    finally:
        third.close()
        restored.close()
        store.close()


@pytest.mark.parametrize("qtype", ["A", "AAAA"])
def test_lookup_explains_records(controller: Controller, resolver: Resolver, qtype: str) -> None:
    make_network(controller, "why", "10.46.0.0/24")
    make_sandbox(controller, "web", "why", aliases={"why": ["www"]})
    client = make_sandbox(controller, "client", "why")
    result = resolver.lookup(client.id, "WWW", qtype).result(5)
    assert result["Source"] == "records"
    assert result["Network"] == "why"
    assert result["Records"] == [{"Container": "web", "Matched": "alias"}]
    assert result["Rcode"] == "NOERROR"
    assert len(result["Answers"]) == (1 if qtype == "A" else 0)
    nx = resolver.lookup(client.id, "nosuch", "A").result(5)
    assert nx["Source"] == "nxdomain" and nx["Rcode"] == "NXDOMAIN"
