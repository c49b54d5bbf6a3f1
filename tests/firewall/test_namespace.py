"""The firewall and the port mapper act on the namespace that was current when they were made
(the daemon's host), whatever namespace the calling thread is in: libnftables opens its netlink
socket when its context is made, and sockets belong to the namespace they were opened in."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from cnm.firewall.api import NetworkRules
from cnm.firewall.nftables import NftablesFirewall
from cnm.model import PortRequest
from cnm.osl.links import HostNetwork
from cnm.osl.namespace import NetNamespace, delete_netns
from cnm.portmap.mapper import PortMapper
from tests.support.netns import make_test_netns

from .probes import nft_list, run


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_calls_from_another_namespace_act_on_the_host(host_netns: NetNamespace) -> None:
    firewall = NftablesFirewall()
    host = HostNetwork()
    mapper = PortMapper(host)
    other = make_test_netns("other")
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            with other.entered():
                firewall.add_network(
                    NetworkRules("br-elsewhere", (ipaddress.ip_network("10.96.0.0/24"),))
                )
                firewall.start()
                mapper.map(
                    [PortRequest("tcp", 80, "0.0.0.0", 8090)],
                    ipv4=ipaddress.IPv4Address("10.96.0.2"),
                    ipv6=None,
                    default_host_ip="",
                )
                assert _bindable(8090)  # free in the namespace this thread is in
        except BaseException as err:
            errors.append(err)

    try:
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert not errors, errors
        assert '"br-elsewhere"' in nft_list("inet")
        assert run("nft", "list", "ruleset", netns=other.path) == ""
        assert not _bindable(8090)  # held in the host namespace
    finally:
        mapper.close()
        firewall.close()
        host.close()
        other.close()
        delete_netns(other.path)


def test_a_closed_firewall_refuses_to_act(host_netns: NetNamespace) -> None:
    firewall = NftablesFirewall()
    firewall.start()
    firewall.close()
    with pytest.raises(Exception, match="the firewall is closed"):
        firewall.add_network(NetworkRules("br-late"))
    assert '"br-late"' not in nft_list("inet")
