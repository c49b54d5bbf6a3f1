"""CNI 1.1: cnm as a network plugin for CNI runtimes (containerd, CRI-O, Podman's CNI mode,
Kubernetes through them).

Three parts, so that the executable a runtime starts for every call stays small:

* ``protocol``     the spec's data: versions, error codes, the environment and the network
                   configuration as parsed and validated, results rendered per version. Pure
                   and stdlib-only: both sides use it.
* ``plugin``       the ``cnm-cni`` executable: reads the environment and stdin, answers VERSION
                   itself, forwards every other command to the daemon's ``/cnm/cni/<command>``
                   over its Unix socket, and prints what comes back (a thin client: the
                   network, its addresses, DNS names and firewall are the daemon's).
* ``attachments``  the daemon's side: each CNI attachment (container id, interface name) is an
                   endpoint of a cnm network joined to a sandbox that adopted the container's
                   namespace (``controller/sandboxes.py``), so CNI containers and Docker-API
                   containers share one IPAM, one DNS and one firewall.

This file imports nothing, so that ``cnm-cni`` loads only what it uses.
"""
