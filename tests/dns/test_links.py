"""``--link name:alias`` on user-defined networks (Docker's rule outside the default bridge): the
alias names the linked container for the linking sandbox only, on the network the link was
made on, before any other name; it follows the linked container as it comes and goes."""

from __future__ import annotations

import secrets

import dns.rcode
import pytest

from cnm.controller import Controller
from cnm.dns.resolver import Resolver
from cnm.errors import InvalidParameter
from cnm.model import EndpointOptions, SandboxOptions

from .queries import addresses, ask, make_network, make_sandbox
from .test_names import ip_of


def _linking(controller: Controller, name: str, network: str, links: dict[str, str]):
    sandbox = controller.create_sandbox(
        SandboxOptions(container_id=secrets.token_hex(32), embedded_dns=True)
    )
    controller.connect(network, sandbox.id, EndpointOptions(name=name, links=links))
    return controller.sandbox(sandbox.id)


def test_link_alias_resolves_for_the_linking_container_only(
    controller: Controller, resolver: Resolver
) -> None:
    make_network(controller, "front", "10.47.0.0/24")
    make_network(controller, "back", "10.48.0.0/24")
    web = make_sandbox(controller, "web", "front")
    decoy = make_sandbox(controller, "www", "front")  # a container really named www
    client = _linking(controller, "client", "front", {"www": "web", "db": "gone"})
    other = make_sandbox(controller, "other", "front")
    web_ip = ip_of(controller, web, "front")
    for name in ("www", "WWW", "www.front"):
        assert addresses(ask(client, name)) == [web_ip], name  # the link before the name
    assert addresses(ask(other, "www")) == [ip_of(controller, decoy, "front")]
    assert ask(client, "db").rcode() == dns.rcode.NXDOMAIN  # nobody named "gone"
    gone = make_sandbox(controller, "gone", "front")  # the link follows the container
    assert addresses(ask(client, "db")) == [ip_of(controller, gone, "front")]
    controller.delete_sandbox(gone.id)
    assert ask(client, "db").rcode() == dns.rcode.NXDOMAIN
    # On another network the link means nothing: it belongs to the network it was made on.
    make_sandbox(controller, "web", "back")
    elsewhere = _linking(controller, "client2", "back", {})
    assert ask(elsewhere, "www").rcode() == dns.rcode.NXDOMAIN


def test_links_on_the_default_bridge_are_refused(controller: Controller) -> None:
    sandbox = controller.create_sandbox(SandboxOptions(container_id=secrets.token_hex(32)))
    with pytest.raises(InvalidParameter, match="legacy links"):
        controller.connect("bridge", sandbox.id, EndpointOptions(links={"www": "web"}))
