"""The network and IPAM drivers the controller was given, found by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cnm.driverapi import NetworkDriver
from cnm.errors import NotFound
from cnm.ipamapi import IpamDriver


class Registry:
    def __init__(self) -> None:
        self._drivers: dict[str, NetworkDriver] = {}
        self._ipams: dict[str, IpamDriver] = {}

    def add_driver(self, driver: NetworkDriver, config: Mapping[str, Any] | None = None) -> None:
        """driver.Config, then the driver answers to its name."""
        driver.configure(config or {})
        self._drivers[driver.name] = driver

    def add_ipam(self, ipam: IpamDriver) -> None:
        self._ipams[ipam.name] = ipam

    def driver_names(self) -> list[str]:
        return sorted(self._drivers)

    def drivers(self) -> Iterable[NetworkDriver]:
        return list(self._drivers.values())

    def driver(self, name: str) -> NetworkDriver:
        driver = self._drivers.get(name)
        if driver is None:
            raise NotFound(f"could not find network driver {name!r}: plugin not found")
        return driver

    def ipam(self, name: str) -> IpamDriver:
        ipam = self._ipams.get(name)
        if ipam is None:
            raise NotFound(f"could not find IPAM driver {name!r}: plugin not found")
        return ipam

    def ipam_or_none(self, name: str) -> IpamDriver | None:
        """For releases and replays, where an unknown driver is logged, not raised."""
        return self._ipams.get(name)
