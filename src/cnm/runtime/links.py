"""Legacy links: ``--link name:alias`` for a container on the default bridge, as Docker does.

On a user-defined network a link is an alias the embedded DNS answers (``cnm.dns``); on the
default bridge, which has no DNS, Docker's older mechanism applies and this module is it:

* at create the linked container must exist (it is remembered by id, so a rename keeps the
  link); one in host mode cannot be linked to;
* at start it must be running and on the default bridge ("Cannot link to a non running
  container: /db AS /web/database", "Cannot link to /db, as it does not belong to the default
  network"), and the linking container gets, for each link, a hosts line
  ``<ip>\t<alias> <its hostname> <its name>`` (the name only when it differs from the alias)
  after the --add-host ones, and the environment variables of Docker's links.go: ``ALIAS_PORT``,
  ``ALIAS_PORT_80_TCP`` and its ``_ADDR/_PORT/_PROTO``, ``_START``/``_END`` for runs of
  consecutive ports, ``ALIAS_NAME=/web/alias`` and ``ALIAS_ENV_X`` for the linked container's
  environment (HOME and PATH left out); the container's own environment wins over them;
* when a linked container starts again (at a new address), the hosts line of every running
  container linking to it is updated, as Docker updates its parents' hosts files; the
  variables keep the values of the linking container's start, as in Docker;
* ``DELETE /containers/web/alias?link=1`` removes the link (its hosts line goes at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cnm import validate
from cnm.errors import InvalidParameter, NotFound
from cnm.runtime.model import Container

DEFAULT_BRIDGE = "bridge"


def is_legacy(network_mode: str) -> bool:
    """Whether ``--link`` on a container of this network mode is a legacy link."""
    return network_mode == DEFAULT_BRIDGE


def resolve(entries: list[str], mode: str, find: Callable[[str], Container]) -> dict[str, str]:
    """The links of a container being created in ``mode``: alias -> linked container's id."""
    if mode == "none" and entries:
        raise InvalidParameter(
            "conflicting options: links need the default bridge or a user-defined network, "
            "not network mode none"
        )
    linked: dict[str, str] = {}
    for entry in entries:
        name, alias = validate.link(entry)
        try:
            child = find(name)
        except NotFound as err:
            raise InvalidParameter(f"could not get container for {name}: {err}") from None
        if child.host_config.network_mode == "host":
            raise InvalidParameter(
                "conflicting options: host type networking can't be used with links. This "
                "would result in undefined behavior"
            )
        if linked.get(alias, child.id) != child.id:
            raise InvalidParameter(f"the link alias {alias} is given for two containers")
        linked[alias] = child.id
    return linked


def hosts_entry(alias: str, child: Container, address: str) -> str:
    """The linked container's hosts line, as ``names:address`` (the sandbox's form)."""
    names = [alias, child.config.hostname or child.id[:12]]
    if alias != child.name:
        names.append(child.name)
    return f"{' '.join(names)}:{address}"


def entry_alias(entry: str) -> str:
    """The alias a hosts line of ``hosts_entry`` is for."""
    return entry.split(":", 1)[0].split(" ", 1)[0]


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    """The linked container's exposed ports, ranges spread, in Docker's order: by number,
    TCP first."""
    ports: set[tuple[int, str]] = set()
    for key in exposed:
        numbers, _, proto = key.partition("/")
        first, _, last = numbers.partition("-")
        for number in range(int(first), int(last or first) + 1):
            ports.add((number, proto or "tcp"))
    return sorted(ports, key=lambda p: (p[0], p[1] != "tcp"))


def _next_contiguous(ports: list[tuple[int, str]], value: int, index: int) -> int:
    for i in range(index + 1, len(ports)):
        if ports[i][0] > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1


def environment(parent_name: str, alias: str, child: Container, address: str) -> list[str]:
    """Docker's variables for one link (daemon/links/links.go, ToEnv, of 20.10)."""
    prefix = alias.upper().replace("-", "_")
    ports = _ports(child.config.exposed_ports)
    env: list[str] = []
    if ports:
        number, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{address}:{number}")
    i = 0
    while i < len(ports):
        number, proto = ports[i]
        j = _next_contiguous(ports, number, i)
        if j > i + 1:
            last, last_proto = ports[j]
            start = f"{prefix}_PORT_{number}_{proto.upper()}"
            env += [
                f"{start}_START={proto}://{address}:{number}",
                f"{start}_ADDR={address}",
                f"{start}_PROTO={proto}",
                f"{start}_PORT_START={number}",
                f"{prefix}_PORT_{number}_{last_proto.upper()}_END={last_proto}://{address}:{last}",
                f"{prefix}_PORT_{number}_{last_proto.upper()}_PORT_END={last}",
            ]
            i = j + 1
        else:
            i += 1
    for number, proto in ports:
        each = f"{prefix}_PORT_{number}_{proto.upper()}"
        env += [
            f"{each}={proto}://{address}:{number}",
            f"{each}_ADDR={address}",
            f"{each}_PORT={number}",
            f"{each}_PROTO={proto}",
        ]
    env.append(f"{prefix}_NAME=/{parent_name}/{alias}")
    for entry in child.config.env:
        name, sep, value = entry.partition("=")
        if sep and name not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{name}={value}")
    return env
