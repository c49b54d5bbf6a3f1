"""The host driver: the sandbox is the host's own network namespace.

There is no interface to make and no address to hand out; the container sees the host's links,
routes and sockets directly (`docker run --network host`)."""

from cnm.drivers.nointerface import NoInterfaceDriver


class HostDriver(NoInterfaceDriver):
    name = "host"
