"""Docker's network JSON <-> cnm's model, as pure functions.

Request bodies are read the way Docker's Go decoder reads them, so that every client that works
with Docker works here: field names match case-insensitively (an exact match wins), unknown
fields are ignored, and ``null`` means "not given" (docker-py sends ``"Options": null``). A value
of the wrong type is refused with its path, e.g. ``IPAM.Config[0].Subnet must be a string``.

Responses follow Docker 28's shape field for field (``docker network inspect``). ``IPAM.Options``
echoes what the create request gave, as Docker does: ``null`` when it had none (docker-py sends
none; the predefined networks have none), an object otherwise (the docker CLI always sends one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from cnm.errors import InvalidParameter
from cnm.model import Endpoint, IpamRequest, Network, NetworkRequest, PoolRecord, Sandbox

_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "a number"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _type_name(value: object) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return "null"


class JsonObject:
    """A JSON object read with Go's rules: case-insensitive keys, null is absent."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            what = path or "the request body"
            raise InvalidParameter(f"{what} must be a JSON object, not {_type_name(data)}")
        self._data = data
        self._folded = {key.lower(): value for key, value in data.items()}
        self._path = path

    def _where(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def _get(self, name: str) -> Any:
        if name in self._data:
            return self._data[name]
        return self._folded.get(name.lower())

    def string(self, name: str) -> str:
        value = self._get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidParameter(f"{self._where(name)} must be a string, not {_type_name(value)}")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self._get(name)
        if value is not None and not isinstance(value, bool):
            raise InvalidParameter(
                f"{self._where(name)} must be a boolean, not {_type_name(value)}"
            )
        return value

    def string_map(self, name: str) -> dict[str, str]:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidParameter(
                f"{self._where(name)} must be an object of strings, not {_type_name(value)}"
            )
        for key, item in value.items():
            if not isinstance(item, str):
                raise InvalidParameter(
                    f"{self._where(name)}[{key!r}] must be a string, not {_type_name(item)}"
                )
        return dict(value)

    def has(self, name: str) -> bool:
        """Whether ``name`` is given (not absent, not null)."""
        return self._get(name) is not None

    def object(self, name: str) -> JsonObject | None:
        value = self._get(name)
        return None if value is None else JsonObject(value, self._where(name))

    def array(self, name: str) -> list[Any]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidParameter(f"{self._where(name)} must be an array, not {_type_name(value)}")
        return value

    def strings(self, name: str) -> list[str]:
        """An array of strings; a lone string is taken as a one-item array."""
        value = self._get(name)
        if isinstance(value, str):
            return [value]
        items = self.array(name)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidParameter(
                    f"{self._where(name)}[{index}] must be a string, not {_type_name(item)}"
                )
        return list(items)


def parse_network_create(body: object) -> NetworkRequest:
    """Translate a ``POST /networks/create`` body into a NetworkRequest.

    Refused here, with 400, because cnm has no such feature: swarm scopes and ingress networks,
    config-only networks and ``ConfigFrom``, and ``EnableIPv4: false`` (IPv6-only networks).
    ``CheckDuplicate`` is ignored: names are always unique, as in Docker since API 1.44."""
    root = JsonObject(body, "")
    scope = root.string("Scope")
    if scope not in ("", "local", "global"):
        raise InvalidParameter(
            f"scope {scope!r} is not supported: cnm networks are of local or global scope "
            "(swarm scope needs swarm mode)"
        )
    if root.boolean("Ingress"):
        raise InvalidParameter("ingress networks belong to swarm mode, which cnm does not support")
    if root.boolean("ConfigOnly"):
        raise InvalidParameter("config-only networks (ConfigOnly) are not supported")
    config_from = root.object("ConfigFrom")
    if config_from is not None and config_from.string("Network"):
        raise InvalidParameter("creating a network from a config-only network is not supported")
    if root.boolean("EnableIPv4") is False:
        raise InvalidParameter(
            "EnableIPv4=false (an IPv6-only network) is not supported yet: every network has IPv4"
        )
    request = NetworkRequest(
        name=root.string("Name"),
        driver=root.string("Driver") or "bridge",
        options=root.string_map("Options"),
        labels=root.string_map("Labels"),
        internal=bool(root.boolean("Internal")),
        attachable=bool(root.boolean("Attachable")),
        enable_ipv6=bool(root.boolean("EnableIPv6")),
        scope=scope,
    )
    ipam = root.object("IPAM")
    if ipam is not None:
        request.ipam_driver = ipam.string("Driver") or "default"
        if ipam.has("Options"):
            request.ipam_options = ipam.string_map("Options")
        for index, item in enumerate(ipam.array("Config")):
            entry = JsonObject(item, f"IPAM.Config[{index}]")
            request.ipam_config.append(
                IpamRequest(
                    subnet=entry.string("Subnet") or None,
                    ip_range=entry.string("IPRange") or None,
                    gateway=entry.string("Gateway") or None,
                    aux_addresses=entry.string_map("AuxiliaryAddresses"),
                )
            )
    return request


def _pool_json(pool: PoolRecord) -> dict[str, Any]:
    """One ``IPAM.Config`` entry; Docker omits the empty fields (Go's omitempty)."""
    entry: dict[str, Any] = {"Subnet": pool.subnet}
    if pool.ip_range:
        entry["IPRange"] = pool.ip_range
    if pool.gateway:
        entry["Gateway"] = pool.gateway.split("/")[0]
    if pool.aux_addresses:
        entry["AuxiliaryAddresses"] = dict(pool.aux_addresses)
    return entry


def network_to_json(
    network: Network,
    attachments: Iterable[tuple[Endpoint, Sandbox]] = (),
    container_names: Mapping[str, str] | None = None,
    peers: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A network as ``GET /networks/{id}`` shows it. ``attachments`` are the network's
    endpoints joined to a sandbox, listed under ``Containers`` by the sandbox's container id
    and named after that container (``container_names``; the endpoint's name for a sandbox that
    no container owns). The list call passes none, as Docker's list leaves ``Containers``
    empty. A global network also lists ``Peers``: the hosts with endpoints on it (name,
    address), as Docker shows an overlay's."""
    names = container_names or {}
    containers = {
        sandbox.container_id: {
            "Name": names.get(sandbox.container_id, endpoint.name),
            "EndpointID": endpoint.id,
            "MacAddress": endpoint.mac_address or "",
            "IPv4Address": endpoint.ipv4_address or "",
            "IPv6Address": endpoint.ipv6_address or "",
        }
        for endpoint, sandbox in attachments
    }
    ipam_options = None if network.ipam_options is None else dict(network.ipam_options)
    if network.predefined and not ipam_options:
        ipam_options = None  # records made before cnm kept "not given" apart from {}
    shown: dict[str, Any] = {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created,
        "Scope": network.scope,
        "Driver": network.driver,
        "EnableIPv4": True,
        "EnableIPv6": network.enable_ipv6,
        "IPAM": {
            "Driver": network.ipam_driver,
            "Options": ipam_options,
            "Config": [_pool_json(p) for p in (*network.ipv4_pools, *network.ipv6_pools)],
        },
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(network.options),
        "Labels": dict(network.labels),
    }
    if network.scope == "global":
        shown["Peers"] = [{"Name": name, "IP": address} for name, address in peers]
    return shown
