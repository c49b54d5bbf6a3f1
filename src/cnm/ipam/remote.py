"""A remote IPAM driver: a plugin speaking libnetwork's IPAM protocol, behind the IPAM contract.

Each contract call is one ``IpamDriver.*`` call (``cnm.plugins``). The plugin keeps its own
state, so the controller replays nothing to it after a restart unless its capabilities ask
for that (``RequiresRequestReplay``). A plugin without ``GetCapabilities`` (404) has empty
capabilities, as libnetwork gives it. A pool's ``Data`` may name the gateway the plugin chose
(``com.docker.network.gateway``); the controller uses it when the user named none. With
``RequiresMACAddress`` the controller chooses an endpoint's MAC before asking for its address
and sends it along (``com.docker.network.endpoint.macaddress``), as libnetwork does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnm.errors import CnmError
from cnm.ipamapi import IPAddress, IpamCapabilities, IpamDriver, IPInterface, PoolGrant
from cnm.plugins import protocol
from cnm.plugins.client import MethodNotImplemented, PluginClient


class RemoteIpam(IpamDriver):
    def __init__(self, name: str, client: PluginClient, caps: IpamCapabilities) -> None:
        self.name = name
        self.client = client
        self._caps = caps

    @classmethod
    def activate(cls, name: str, client: PluginClient) -> RemoteIpam:
        try:
            answer = client.call("IpamDriver.GetCapabilities")
        except MethodNotImplemented:
            return cls(name, client, IpamCapabilities())
        protocol.check_error(answer, protocol.IPAM_ERROR_KEY)
        reader = protocol.Reader(answer, "GetCapabilities answer", CnmError)
        caps = IpamCapabilities(
            requires_mac_address=reader.boolean("RequiresMACAddress"),
            requires_request_replay=reader.boolean("RequiresRequestReplay"),
        )
        return cls(name, client, caps)

    def _call(self, method: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer = self.client.call(f"IpamDriver.{method}", body)
        protocol.check_error(answer, protocol.IPAM_ERROR_KEY)
        return answer

    def capabilities(self) -> IpamCapabilities:
        return self._caps

    def default_address_spaces(self) -> tuple[str, str]:
        reader = protocol.Reader(
            self._call("GetDefaultAddressSpaces"), "GetDefaultAddressSpaces answer", CnmError
        )
        local = reader.string("LocalDefaultAddressSpace")
        if not local:
            raise CnmError(
                f"IPAM plugin {self.name} named no LocalDefaultAddressSpace in "
                "GetDefaultAddressSpaces"
            )
        return local, reader.string("GlobalDefaultAddressSpace")

    def request_pool(
        self,
        address_space: str,
        pool: str | None,
        sub_pool: str | None,
        options: Mapping[str, str],
        v6: bool,
    ) -> PoolGrant:
        body = protocol.request_pool_request(address_space, pool, sub_pool, options, v6)
        grant = protocol.parse_pool_answer(self._call("RequestPool", body))
        if (grant.subnet.version == 6) != v6:
            self.release_pool(grant.pool_id)
            raise CnmError(
                f"IPAM plugin {self.name} answered pool {grant.subnet} to a request for an "
                f"IPv{6 if v6 else 4} pool"
            )
        return grant

    def release_pool(self, pool_id: str) -> None:
        self._call("ReleasePool", {"PoolID": pool_id})

    def request_address(
        self, pool_id: str, address: IPAddress | None, options: Mapping[str, str]
    ) -> IPInterface:
        body = protocol.request_address_request(pool_id, address, options)
        granted = protocol.parse_address_answer(self._call("RequestAddress", body))
        if address is not None and granted.ip != address:
            self.release_address(pool_id, granted.ip)
            raise CnmError(
                f"IPAM plugin {self.name} answered {granted.ip} to a request for {address}"
            )
        return granted

    def release_address(self, pool_id: str, address: IPAddress) -> None:
        self._call("ReleaseAddress", {"PoolID": pool_id, "Address": str(address)})
