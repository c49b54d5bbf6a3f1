"""The null driver: network `none`, a sandbox with loopback only.

The sandbox keeps its own namespace with nothing but loopback up; joining adds no interface
and no address (`docker run --network none`)."""

from cnm.drivers.nointerface import NoInterfaceDriver


class NullDriver(NoInterfaceDriver):
    name = "null"
