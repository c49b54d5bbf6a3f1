"""Forwarding: names cnm does not own go to stub upstream servers on the host namespace's
loopback (never to the machine's resolver): order and failover, timeouts, NXDOMAIN, truncation
and TCP, internal networks, the per-container bound."""

from __future__ import annotations

import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import pytest

from cnm.controller import Controller
from cnm.dns.resolver import Resolver, ResolverConfig

from .queries import (
    HOST_STUB,
    UPSTREAM_TIMEOUT_S,
    Stubs,
    addresses,
    ask,
    client_socket,
    make_network,
    make_sandbox,
)

ANSWER = "198.51.100.7"


def asked(stub: Stubs, address: str) -> list[str]:
    return [line for line in stub.queries() if line.startswith(address + " ")]


def test_forwards_to_the_host_resolver_over_udp_and_tcp(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs(f"{HOST_STUB}=ok")
    make_network(controller, "fwd", "10.50.0.0/24")
    client = make_sandbox(controller, "client", "fwd")
    response = ask(client, "www.example.org")
    assert addresses(response) == [ANSWER]
    assert response.flags & dns.flags.RA
    assert addresses(ask(client, "www.example.org", tcp=True)) == [ANSWER]
    assert asked(upstream, HOST_STUB) == [
        f"{HOST_STUB} udp www.example.org.",
        f"{HOST_STUB} tcp www.example.org.",
    ]
    assert ask(client, "missing.example.org").rcode() == dns.rcode.NXDOMAIN


def test_nxdomain_comes_straight_back_without_failover(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs("127.0.0.61=nxdomain", "127.0.0.62=ok")
    make_network(controller, "fwd", "10.51.0.0/24")
    client = make_sandbox(controller, "client", "fwd", dns=["127.0.0.61", "127.0.0.62"])
    assert ask(client, "www.example.org").rcode() == dns.rcode.NXDOMAIN
    assert len(asked(upstream, "127.0.0.61")) == 1
    assert asked(upstream, "127.0.0.62") == []


def test_failover_past_servfail_silence_and_slowness(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs("127.0.0.63=servfail", "127.0.0.64=drop", "127.0.0.65=ok", "127.0.0.66=slow")
    make_network(controller, "fwd", "10.52.0.0/24")
    failing = make_sandbox(
        controller, "failing", "fwd", dns=["127.0.0.63", "127.0.0.64", "127.0.0.65"]
    )
    slow = make_sandbox(controller, "slow", "fwd", dns=["127.0.0.66", "127.0.0.65"])
    started = time.monotonic()
    assert addresses(ask(failing, "a.example.org")) == [ANSWER]
    assert UPSTREAM_TIMEOUT_S <= time.monotonic() - started < 3 * UPSTREAM_TIMEOUT_S
    for address in ("127.0.0.63", "127.0.0.64", "127.0.0.65"):
        assert len(asked(upstream, address)) == 1, address
    started = time.monotonic()
    assert addresses(ask(slow, "b.example.org")) == [ANSWER]
    assert time.monotonic() - started < 3 * UPSTREAM_TIMEOUT_S
    result = resolver.lookup(failing.id, "c.example.org", "A").result(5)
    assert result["Source"] == "forwarded"
    assert result["Upstreams"] == ["127.0.0.63", "127.0.0.64", "127.0.0.65"]
    assert [t["Result"] for t in result["Tries"]] == [
        "SERVFAIL",
        f"no answer within {UPSTREAM_TIMEOUT_S:g}s",
        "NOERROR",
    ]
    assert result["Answers"] == [f"c.example.org. 60 IN A {ANSWER}"]


def test_servfail_when_every_try_fails_and_never_more_than_three(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs("127.0.0.64=drop", "127.0.0.68=drop", "127.0.0.65=ok")
    make_network(controller, "fwd", "10.53.0.0/24")
    # 127.0.0.70 has no server: refused at once, the next one is tried
    servers = ["127.0.0.70", "127.0.0.64", "127.0.0.68", "127.0.0.65"]
    client = make_sandbox(controller, "client", "fwd", dns=servers)
    started = time.monotonic()
    response = ask(client, "www.example.org", timeout=5)
    elapsed = time.monotonic() - started
    assert response.rcode() == dns.rcode.SERVFAIL
    assert 2 * UPSTREAM_TIMEOUT_S <= elapsed < 3 * UPSTREAM_TIMEOUT_S + 0.5
    assert asked(upstream, "127.0.0.65") == []
    metrics = resolver.metrics()
    assert metrics["Queries"]["servfail"] == 1
    assert metrics["Upstream"]["timeouts"] == 2 and metrics["Upstream"]["errors"] == 1


def test_truncated_udp_answers_are_asked_again_over_tcp(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs("127.0.0.71=truncate")
    make_network(controller, "fwd", "10.54.0.0/24")
    client = make_sandbox(controller, "client", "fwd", dns=["127.0.0.71"])
    big = ask(client, "big.example.org", use_edns=0, payload=1232)
    assert len(addresses(big)) == 40 and not big.flags & dns.flags.TC
    assert asked(upstream, "127.0.0.71") == [
        "127.0.0.71 udp big.example.org.",
        "127.0.0.71 tcp big.example.org.",
    ]
    plain = ask(client, "big.example.org")  # 40 records do not fit 512 octets: come back by TCP
    assert plain.flags & dns.flags.TC and not plain.answer
    assert len(addresses(ask(client, "big.example.org", tcp=True))) == 40
    assert resolver.metrics()["Upstream"]["tcp_retries"] == 2


def test_containers_only_on_internal_networks_get_no_forwarding(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs(f"{HOST_STUB}=ok")
    make_network(controller, "closed", "10.55.0.0/24", internal=True)
    make_network(controller, "open", "10.56.0.0/24")
    inside = make_sandbox(controller, "inside", "closed")
    both = make_sandbox(controller, "both", "closed", "open")
    refused = ask(inside, "www.example.org")
    assert refused.rcode() == dns.rcode.REFUSED and not refused.flags & dns.flags.RA
    assert ask(inside, "www.example.org", tcp=True).rcode() == dns.rcode.REFUSED
    assert addresses(ask(inside, "both")) != []  # names on the network still resolve
    assert upstream.queries() == []
    assert addresses(ask(both, "www.example.org")) == [ANSWER]
    result = resolver.lookup(inside.id, "www.example.org", "A").result(5)
    assert result["Source"] == "refused" and result["Rcode"] == "REFUSED"


def test_the_daemons_dns_option_comes_before_the_host_resolvers(
    controller: Controller, resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs(f"{HOST_STUB}=nxdomain", "127.0.0.72=ok")
    controller.config.dns = ["127.0.0.72"]
    make_network(controller, "fwd", "10.57.0.0/24")
    client = make_sandbox(controller, "client", "fwd")
    assert addresses(ask(client, "www.example.org")) == [ANSWER]
    assert asked(upstream, HOST_STUB) == []


@pytest.fixture
def strict_resolver(controller: Controller) -> Resolver:
    return Resolver(controller, ResolverConfig(upstream_timeout=1.0, forwards_per_sandbox=4))


def test_one_noisy_container_cannot_take_every_forwarding_slot(
    controller: Controller, strict_resolver: Resolver, stubs: Callable[..., Stubs]
) -> None:
    stubs("127.0.0.64=drop", "127.0.0.65=ok")
    strict_resolver.start()
    try:
        make_network(controller, "fwd", "10.58.0.0/24")
        noisy = make_sandbox(controller, "noisy", "fwd", dns=["127.0.0.64"])
        quiet = make_sandbox(controller, "quiet", "fwd", dns=["127.0.0.65"])
        with client_socket(noisy) as sock:
            sock.connect(("127.0.0.11", 53))
            sock.settimeout(0.5)
            for i in range(10):
                sock.send(dns.message.make_query(f"n{i}.example.org", "A").to_wire())
            fast = []
            try:
                while True:
                    fast.append(dns.message.from_wire(sock.recv(4096)).rcode())
            except TimeoutError:
                pass
        assert fast == [dns.rcode.SERVFAIL] * 6  # the four in flight wait for their timeout
        started = time.monotonic()
        assert addresses(ask(quiet, "www.example.org")) == [ANSWER]
        assert addresses(ask(quiet, "noisy")) != []
        assert time.monotonic() - started < 0.5
        assert strict_resolver.metrics()["Queries"]["overloaded"] == 6
    finally:
        strict_resolver.close()
