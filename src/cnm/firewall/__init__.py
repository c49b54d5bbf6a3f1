"""Isolation, egress NAT and published ports: the seam the drivers call (``api``) and its
nftables implementation (``nftables``, with ``monitor`` and the ``docker`` coexistence step)."""
