"""The network and IPAM drivers the controller was given, found by name.

A name the controller was not given is asked of the ``DriverFinder`` it may have been handed
(``cnm.wiring`` supplies one that activates remote plugins), the first time it is needed: so
``docker network create -d myplugin`` works without a restart, and a plugin that was gone at
start is found again by the next request that needs it. A found driver is kept, and the
controller is told (``on_new_driver``/``on_new_ipam``) so that it hands it the records of its
networks, as it hands them to the drivers it starts with. A failed search is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from cnm.driverapi import NetworkDriver
from cnm.errors import CnmError, NotFound, Unavailable
from cnm.ipamapi import IpamDriver
from cnm.model import Network


class DriverFinder(Protocol):
    """Finds drivers by name beyond those given (remote plugins). Each method returns None
    when there is no such driver and raises a cnm error when there is one that cannot be
    used."""

    def find_driver(self, name: str) -> NetworkDriver | None: ...

    def find_ipam(self, name: str) -> IpamDriver | None: ...


class Registry:
    def __init__(self, finder: DriverFinder | None = None) -> None:
        self._drivers: dict[str, NetworkDriver] = {}
        self._ipams: dict[str, IpamDriver] = {}
        self._finder = finder
        self._find_lock = threading.Lock()  # one search at a time; known names never wait
        self.on_new_driver: Callable[[NetworkDriver], None] | None = None
        self.on_new_ipam: Callable[[IpamDriver], None] | None = None

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
        if driver is None and self._finder is not None:
            with self._find_lock:
                driver = self._drivers.get(name)
                if driver is None:
                    driver = self._finder.find_driver(name)
                    if driver is not None:
                        self.add_driver(driver)
                        if self.on_new_driver is not None:
                            self.on_new_driver(driver)
        if driver is None:
            raise NotFound(f"could not find network driver {name!r}: plugin not found")
        return driver

    def ipam(self, name: str) -> IpamDriver:
        ipam = self._ipams.get(name)
        if ipam is None and self._finder is not None:
            with self._find_lock:
                ipam = self._ipams.get(name)
                if ipam is None:
                    ipam = self._finder.find_ipam(name)
                    if ipam is not None:
                        self.add_ipam(ipam)
                        if self.on_new_ipam is not None:
                            self.on_new_ipam(ipam)
        if ipam is None:
            raise NotFound(f"could not find IPAM driver {name!r}: plugin not found")
        return ipam

    def known_driver(self, name: str) -> NetworkDriver | None:
        """A driver already known, without searching."""
        return self._drivers.get(name)

    def ipam_or_none(self, name: str) -> IpamDriver | None:
        """For releases and replays of existing networks: an IPAM that cannot be found now
        is None (the caller logs), never an error."""
        try:
            return self.ipam(name)
        except CnmError:
            return None

    def network_driver(self, network: Network) -> NetworkDriver:
        """The driver of an existing network; a driver that cannot be found now (a plugin
        gone since the network was made) makes the network unusable, not unknown."""
        try:
            return self.driver(network.driver)
        except CnmError as err:
            raise Unavailable(
                f"network {network.name} cannot be used: its driver {network.driver} is "
                f"unavailable: {err}"
            ) from None

    def network_ipam(self, network: Network) -> IpamDriver:
        try:
            return self.ipam(network.ipam_driver)
        except CnmError as err:
            raise Unavailable(
                f"network {network.name} cannot be used: its IPAM driver {network.ipam_driver} "
                f"is unavailable: {err}"
            ) from None
