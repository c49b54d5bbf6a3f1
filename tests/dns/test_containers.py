"""Containers under runc asking the resolver with busybox ``nslookup``: Docker's rule for who
gets 127.0.0.11, the DNS options, and names following connect, disconnect, rename, stop, start
and rm as the runtime drives them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from cnm.dns.resolver import Resolver, ResolverConfig
from cnm.model import Sandbox
from cnm.runtime.model import EndpointRequest
from cnm.runtime.runtime import Runtime
from tests.support.runtime import config, host, ipv4_of, make_network, output, run_exec

from .queries import UPSTREAM_TIMEOUT_S, Stubs, addresses, ask, send_raw

UNROUTED = "192.0.2.53"  # the runtime fixture's non-loopback host nameserver


@pytest.fixture
def runtime(
    make_runtime: Callable[[], Runtime],
    busybox_tar: Path,
) -> Iterator[Runtime]:
    """A runtime whose controller has the resolver; busybox imported. The host resolv.conf of
    the runtime fixture also names 192.0.2.53: the test host namespace has no route to it, so
    nothing could ever be sent there."""
    route = subprocess.run(["ip", "route", "get", UNROUTED], capture_output=True, text=True)
    assert route.returncode != 0, route.stdout
    runtime = make_runtime()
    resolver = Resolver(runtime.controller, ResolverConfig(upstream_timeout=UPSTREAM_TIMEOUT_S))
    resolver.start()
    with open(busybox_tar, "rb") as stream:
        runtime.import_image(stream, "busybox:local")
    yield runtime
    resolver.close()


def run(
    runtime: Runtime, name: str, *networks: str, aliases: list[str] | None = None, **kw: object
) -> None:
    wanted = {network: EndpointRequest(aliases=list(aliases or [])) for network in networks}
    runtime.create_container(
        name,
        config("busybox:local", "sleep", "1000", hostname=str(kw.pop("hostname", ""))),
        host(network_mode=networks[0] if networks else "bridge", **kw),
        wanted,
    )
    runtime.start_container(name)


def sandbox_of(runtime: Runtime, name: str) -> Sandbox:
    sandbox_id = runtime.container(name).sandbox_id
    assert sandbox_id is not None
    return runtime.controller.sandbox(sandbox_id)


def nslookup(runtime: Runtime, ref: str, name: str) -> tuple[int, str]:
    code, out, err = run_exec(runtime, ref, "timeout", "10", "nslookup", name)
    return code, out + err


def test_containers_find_each_other_with_nslookup(
    runtime: Runtime, stubs: Callable[..., Stubs]
) -> None:
    stubs("127.0.0.53=nxdomain")  # the host's resolver, for stranger.example.test
    make_network(runtime, "app", "10.70.0.0/24")
    make_network(runtime, "elsewhere", "10.71.0.0/24")
    run(runtime, "web", "app", aliases=["www"], hostname="webhost")
    run(runtime, "client", "app")
    run(runtime, "stranger", "elsewhere")
    web_ip = ipv4_of(runtime, "web", "app")
    short_id = runtime.container("web").id[:12]
    for name in ("web", "WWW", short_id, "webhost", "web.app"):
        code, out = nslookup(runtime, "client", name)
        assert code == 0 and f"Address: {web_ip}" in out, (name, out)
    code, out = nslookup(runtime, "client", "stranger")
    assert code != 0 and "NXDOMAIN" in out, out
    code, out = nslookup(runtime, "stranger", "web")
    assert code != 0 and "NXDOMAIN" in out, out
    code, out = nslookup(runtime, "client", web_ip)
    assert code == 0 and "web.app" in out, out
    resolv = output(runtime, "client", "cat", "/etc/resolv.conf")
    assert resolv == "nameserver 127.0.0.11\nsearch example.test\noptions ndots:0\n"


def test_the_default_bridge_gets_the_host_resolvers_and_no_embedded_dns(runtime: Runtime) -> None:
    run(runtime, "legacy")
    run(runtime, "legacy2")
    resolv = output(runtime, "legacy", "cat", "/etc/resolv.conf")
    assert resolv == f"nameserver {UNROUTED}\nsearch example.test\n"  # loopback 127.0.0.53 gone
    query = dns.message.make_query("legacy2", "A").to_wire()
    assert send_raw(sandbox_of(runtime, "legacy"), query, 0.3) is None


def test_dns_options_add_host_and_forwarding_to_the_containers_dns(
    runtime: Runtime, stubs: Callable[..., Stubs]
) -> None:
    upstream = stubs("127.0.0.80=ok")
    make_network(runtime, "opts", "10.72.0.0/24")
    run(
        runtime,
        "client",
        "opts",
        dns=["127.0.0.80"],
        dns_search=["corp.test"],
        dns_options=["timeout:3"],
        extra_hosts=["db.local:10.1.2.3"],
    )
    resolv = output(runtime, "client", "cat", "/etc/resolv.conf")
    assert resolv == "nameserver 127.0.0.11\nsearch corp.test\noptions timeout:3 ndots:0\n"
    assert "10.1.2.3\tdb.local" in output(runtime, "client", "cat", "/etc/hosts")
    code, out = nslookup(runtime, "client", "www.example.org")
    assert code == 0 and "198.51.100.7" in out, out
    assert any("www.example.org." in line for line in upstream.queries())


def test_names_follow_connect_disconnect_rename_stop_start_and_rm(runtime: Runtime) -> None:
    make_network(runtime, "life", "10.73.0.0/24")
    make_network(runtime, "side", "10.74.0.0/24")
    run(runtime, "client", "life")
    run(runtime, "svc", "side")
    client = sandbox_of(runtime, "client")
    assert ask(client, "svc").rcode() == dns.rcode.NXDOMAIN
    runtime.connect("svc", "life", EndpointRequest(aliases=["api"]))
    assert addresses(ask(client, "api")) == [ipv4_of(runtime, "svc", "life")]
    runtime.disconnect("svc", "life")
    assert ask(client, "api").rcode() == dns.rcode.NXDOMAIN
    runtime.connect("svc", "life", EndpointRequest())
    runtime.rename_container("svc", "svc2")
    assert ask(client, "svc").rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(client, "svc2")) == [ipv4_of(runtime, "svc2", "life")]
    code, out = nslookup(runtime, "client", "svc2")
    assert code == 0 and ipv4_of(runtime, "svc2", "life") in out, out
    runtime.stop_container("svc2", timeout=0)
    assert ask(client, "svc2").rcode() == dns.rcode.NXDOMAIN
    runtime.rename_container("svc2", "svc3")  # stopped: nothing to rename in DNS
    runtime.start_container("svc3")
    assert addresses(ask(client, "svc3")) == [ipv4_of(runtime, "svc3", "life")]
    runtime.remove_container("svc3", force=True)
    assert ask(client, "svc3").rcode() == dns.rcode.NXDOMAIN
