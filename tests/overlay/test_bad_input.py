"""Bad input to the overlay driver: every option checked with a clear message, VNIs within
bounds and unique, no cluster store, encryption on a kernel without ESP, and failures that
leave no kernel object or firewall element behind."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cnm.controller import ControllerConfig
from cnm.driverapi import EndpointSpec
from cnm.drivers.overlay import OPT_VNI, OverlayDriver, uplink_name
from cnm.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unavailable
from cnm.model import NetworkRequest
from cnm.osl import ipsec
from cnm.osl.namespace import NetNamespace
from cnm.store.sqlite import SqliteStore
from cnm.wiring import build_controller

from .hosts import MemoryIds, OverlayHost, network_spec, overlay_spec, own_links

Hosts = Callable[[int], list[OverlayHost]]


@pytest.fixture
def driver(make_hosts: Hosts) -> OverlayDriver:
    (host,) = make_hosts(1)
    return host.driver


def test_without_a_cluster_store_every_network_is_refused(make_hosts: Hosts) -> None:
    (host,) = make_hosts(1)
    bare = OverlayDriver(host.host, host.firewall, host.ports, namespace_dir=host.root / "bare")
    spec = network_spec("ov", "10.100.0.0/24", options={OPT_VNI: "4096"})
    message = (
        "overlay networks need a cluster store: start the daemon with "
        "--cluster-store etcd://HOST:2379 --cluster-advertise IP"
    )
    for call in (
        lambda: bare.validate_network_options({}),
        lambda: bare.allocate_network(spec, MemoryIds()),
        lambda: bare.create_network(spec),
    ):
        with pytest.raises(Forbidden) as caught:
            call()
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"com.docker.network.bridge.name": "x"}, "unknown option(s) for the overlay driver: "
         "com.docker.network.bridge.name (it takes com.docker.network.driver.overlay.vxlanid_list, "
         "com.docker.network.driver.mtu, encrypted)"),
        ({"com.docker.network.driver.mtu": "big"}, "invalid MTU 'big': not a number"),
        ({"com.docker.network.driver.mtu": "67"}, "invalid MTU 67: must be between 68 and 65535"),
        ({OPT_VNI: "0"}, "invalid VNI 0: must be between 1 and 16777215"),
        ({OPT_VNI: "16777216"}, "invalid VNI 16777216: must be between 1 and 16777215"),
        ({OPT_VNI: "x"}, "invalid VNI 'x': not a number"),
        ({OPT_VNI: "4097,4098"}, "one VNI, not one per subnet"),
    ],
)  # fmt: skip
def test_options_are_checked(driver: OverlayDriver, options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        driver.validate_network_options(options)
    assert message in str(caught.value)


def test_an_ipv6_overlay_needs_an_mtu_of_1280(driver: OverlayDriver) -> None:
    spec = network_spec(
        "ov6", "10.100.0.0/24", subnet_v6="fd00::/64",
        options={"com.docker.network.driver.mtu": "1200"},
    )  # fmt: skip
    with pytest.raises(InvalidParameter, match="an IPv6 network needs at least 1280"):
        driver.allocate_network(spec, MemoryIds())


def test_encryption_is_refused_with_what_the_kernel_lacks(driver: OverlayDriver) -> None:
    with pytest.raises(InvalidParameter) as caught:
        driver.validate_network_options({"encrypted": ""})
    message = str(caught.value)
    assert "docs/overlay-encryption.md" in message
    missing = ipsec.esp_missing()
    if missing:
        assert message.startswith("encrypted overlay networks need IPsec ESP in the kernel")
        assert all(option in message for option in missing)
    else:
        assert message.startswith("cnm does not encrypt overlay networks yet")


def test_this_kernel_refuses_esp_states_as_the_driver_says(host_netns: NetNamespace) -> None:
    """The claim behind the refusal, checked against the kernel: adding an ESP state fails
    when the configuration says ESP is missing (in the test's throwaway namespace)."""
    missing = ipsec.esp_missing()
    if missing is None:
        pytest.skip("the kernel configuration cannot be read here")
    done = subprocess.run(
        ["ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
         "spi", "0x100", "mode", "transport", "enc", "cbc(aes)", "0x" + "11" * 16,
         "auth", "hmac(sha256)", "0x" + "22" * 32],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    if any(item.startswith("CONFIG_INET_ESP") for item in missing):
        assert done.returncode != 0 and "Requested type not found" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        subprocess.run(["ip", "xfrm", "state", "flush"], check=True, timeout=10)


def test_vnis_come_from_4096_up_to_the_bound_and_a_named_one_is_unique(
    make_hosts: Hosts,
) -> None:
    (host,) = make_hosts(1)
    small = OverlayDriver(
        host.host, host.firewall, host.ports, namespace_dir=host.root / "small",
        advertise_address=ipaddress.ip_address(host.sim.address), max_vni=4097,
    )  # fmt: skip
    ids = MemoryIds()
    first = overlay_spec(ids, small, "a")
    second = overlay_spec(ids, small, "b")
    assert (first.options[OPT_VNI], second.options[OPT_VNI]) == ("4096", "4097")
    with pytest.raises(Unavailable, match="no free VNI between 4096 and 4097"):
        overlay_spec(ids, small, "c")
    small.free_network(first, ids)
    assert overlay_spec(ids, small, "c").options[OPT_VNI] == "4096"

    named = overlay_spec(ids, small, "d", options={OPT_VNI: "42"})
    assert named.options[OPT_VNI] == "42"
    with pytest.raises(Conflict, match="VNI 42 is already used by another overlay network"):
        overlay_spec(ids, small, "e", options={OPT_VNI: "42"})
    for bound in (4095, 1 << 24):
        with pytest.raises(InvalidParameter, match="invalid VNI upper bound"):
            OverlayDriver(
                host.host, host.firewall, host.ports, namespace_dir=host.root, max_vni=bound
            )


def test_a_network_without_a_vni_or_driver_options_is_refused(driver: OverlayDriver) -> None:
    with pytest.raises(InvalidParameter, match="has no VNI"):
        driver.create_network(network_spec("ov", "10.100.0.0/24"))
    with pytest.raises(InvalidParameter, match="takes no driver-wide options"):
        driver.configure({"mtu": 1400})
    with pytest.raises(NotFound):
        driver.join("0" * 64, "1" * 64, "/nonexistent", "eth0")


def test_a_failed_first_join_leaves_nothing(make_hosts: Hosts, tmp_path: Path) -> None:
    (host,) = make_hosts(1)
    ids = MemoryIds()
    spec = overlay_spec(ids, host.driver, "ov1")
    host.driver.create_network(spec)
    # Another program's VXLAN device on the same VNI and port: the kernel refuses ours.
    host.run("ip", "link", "add", "squatter", "type", "vxlan", "id", spec.options[OPT_VNI],
             "local", host.sim.address, "dstport", "4789")  # fmt: skip
    with pytest.raises(Conflict, match="create VXLAN device"):
        host.attach(spec, "10.100.0.2/24")
    assert own_links(host) == ["squatter"], "no namespace, no uplink"
    assert uplink_name(spec.network_id) not in host.run("nft", "list", "table", "inet", "cnm")
    assert host.run("ip", "route", "show", "10.100.0.0/24") == ""
    host.run("ip", "link", "del", "squatter")

    # A sandbox that is gone: the devices made for this first join go again.
    host.driver.create_endpoint(EndpointSpec(spec.network_id, "2" * 64))
    with pytest.raises(FileNotFoundError):
        host.driver.join(spec.network_id, "2" * 64, str(tmp_path / "gone"), "eth0")
    host.host.drain_deletions()
    assert own_links(host) == []
    assert uplink_name(spec.network_id) not in host.run("nft", "list", "table", "inet", "cnm")


def test_a_daemon_without_a_cluster_store_refuses_overlay_networks(
    host_netns: NetNamespace, tmp_path: Path
) -> None:
    """The default parts register the driver; with no advertise address the controller's
    create fails with the driver's message and leaves no network."""
    store = SqliteStore(tmp_path / "cnm.db")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    controller = build_controller(
        ControllerConfig(exec_root=tmp_path / "exec", host_resolv_conf=resolv), store
    )
    controller.start()
    try:
        with pytest.raises(Forbidden, match="need a cluster store: start the daemon with"):
            controller.create_network(NetworkRequest(name="ov", driver="overlay"))
        assert [n.name for n in controller.networks() if n.driver == "overlay"] == []
    finally:
        controller.close()
        store.close()


def test_a_subnet_the_host_routes_elsewhere_is_never_taken_over(
    make_hosts: Hosts, ids: MemoryIds
) -> None:
    """A host whose own network came to overlap an overlay after the overlay was created (the
    cluster's overlap check passed then): the first join is refused and the host's route stays
    as it was."""
    (host,) = make_hosts(1)
    spec = overlay_spec(ids, host.driver, "ov1")
    host.driver.create_network(spec)
    host.run("ip", "addr", "add", "10.100.0.250/24", "dev", "eth0")
    before = host.run("ip", "route", "show", "10.100.0.0/24")
    with pytest.raises(Conflict, match="already routed through another interface of this host"):
        host.attach(spec, "10.100.0.2/24")
    assert host.run("ip", "route", "show", "10.100.0.0/24") == before
    assert "dev eth0" in before
    host.host.drain_deletions()
    assert own_links(host) == []
