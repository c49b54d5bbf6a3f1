"""The Docker Engine API server, served by aiohttp on a Unix socket.

``server`` builds the application (routing, version negotiation, headers, error mapping);
``system``, ``networks``, ``containers``, ``execs``, ``images`` and ``dns`` hold the handlers;
``translate``, ``container_json`` and ``filters`` are the pure translation between Docker's JSON
and cnm's records, and Docker's filter semantics (Docker's wire format is built here and nowhere
else); ``streams`` and ``exits`` carry hijacked attach/exec streams and exit notices. The API
layer never touches the kernel: every controller and runtime call runs on a worker thread.
"""

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
