"""The controller: the one authority over networks, endpoints and sandboxes.

It keeps the model's invariants (an endpoint is on one network and in at most one sandbox; a
sandbox holds endpoints of many networks; names are unique), owns the calls to IPAM, the store
and the drivers, and decides their order. It is cut by the seed's nouns, as libnetwork is:

* ``networks.py``   networks and their address pools (IPAM), the predefined networks;
* ``endpoints.py``  endpoints and their addresses;
* ``sandboxes.py``  sandboxes: their namespaces, and ``files.py`` their hosts/resolv.conf;
* ``joins.py``      join and leave, connect and disconnect, and a sandbox's teardown;
* ``gateway.py``    the default-route rule;
* ``ports.py``      published ports, which live on a sandbox's gateway endpoint;
* ``restore.py``    start-up: records loaded, the kernel reconciled with them;
* ``controller.py`` the thin ``Controller`` that composes them and is the public face.

Dependencies point one way: sandboxes use endpoints, endpoints use networks, joins and ports use
all three; none reaches into another's state. The daemon builds the parts the controller is
given (store, IPAM and network drivers, firewall, port mapper); see ``cnm.wiring``.

Transactions (``cnm.transaction``). Every operation pushes an undo step after each step it
completes; a failure at any later step runs the undo steps in reverse, so a failed call leaves
no link, namespace, address or record behind. Kernel objects are made before the record that
names them is committed, and records are removed before the kernel objects; a crash between two
steps therefore leaves at worst an orphaned kernel object, which ``start`` removes (drivers tag
what they make).

Locking. Each table guards its own dictionaries with a short-held lock. A lock per network
serialises the making and forgetting of endpoints on it (names, addresses), a lock per sandbox
serialises joins and leaves on it (always taken before a network lock; the kernel work of a
join or leave holds only this one, see ``joins.py``), and one lock serialises network create and
delete (names stay unique). Events (``cnm.events``) are emitted after the change is recorded, in the caller's
thread.
"""

from cnm.controller.controller import Controller, ControllerConfig

__all__ = ["Controller", "ControllerConfig"]
