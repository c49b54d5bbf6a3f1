"""The Docker Engine API server (the network part), served by aiohttp on a Unix socket.

``server`` builds the application (routing, version negotiation, headers, error mapping),
``system`` and ``networks`` hold the handlers, and ``translate`` and ``filters`` are the pure
JSON <-> model translation and Docker's filter semantics. The API layer never touches the kernel:
every controller call runs on a worker thread (the controller blocks on netlink).
"""

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
