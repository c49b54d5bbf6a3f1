"""Shapes of Docker's JSON that several test directories compare cnm's answers with."""

# The keys of `docker network inspect` (Docker 28, API 1.47) for a local network.
DOCKER_NETWORK_KEYS = {
    "Name",
    "Id",
    "Created",
    "Scope",
    "Driver",
    "EnableIPv4",
    "EnableIPv6",
    "IPAM",
    "Internal",
    "Attachable",
    "Ingress",
    "ConfigFrom",
    "ConfigOnly",
    "Containers",
    "Options",
    "Labels",
}
