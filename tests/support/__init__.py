"""Helpers the test suites share, as importable modules (the way trio ships ``trio.testing``):

* ``netns``: throwaway "host" namespaces and the check that a session left none behind;
* ``daemon``: a real ``cnm daemon`` in a namespace of its own, HTTP to its socket, the docker
  CLIs pointed at it;
* ``runtime``: the busybox fixture image, containers under runc in-process, commands in them;
* ``docker_shapes``: shapes of Docker's JSON that cnm's answers are compared with;
* ``lan``: a "LAN" for macvlan networks: a parent veth whose peer, in an "outside" namespace,
  holds the router's addresses.

Fixtures stay in the conftests (those shared by several suites in tests/conftest.py) and build
on these modules; a suite's own helpers live next to its tests (``kernel/probes.py``,
``firewall/probes.py``, ``firewall/topology.py``, ``dns/queries.py``). No suite imports another
suite's conftest.
"""
