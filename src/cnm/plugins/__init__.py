"""Docker's plugin protocol (v1, "legacy" plugins): the transport both directions share.

* ``client``     HTTP/1.1 JSON POSTs over a Unix socket (or TCP), with a timeout per call;
* ``discovery``  where plugins are found (sockets and spec files) and the activation handshake;
* ``protocol``   the JSON shapes of libnetwork's remote driver and IPAM APIs, both ways.

The remote network driver (``cnm.drivers.remote``) and remote IPAM (``cnm.ipam.remote``) are
built on these; ``cnm.plugins.server`` (``cnm plugin serve``) answers the same protocol with
cnm's own drivers, for a real dockerd.
"""
