"""The topology as a Graphviz graph: DOT text, or SVG/PNG rendered by Graphviz's ``dot``.

Left to right: the host, its networks (a bridge with its subnets and the host's gateway
address on it), the sandboxes with one edge per interface. The edge of the interface that
carries a sandbox's default route is bold and says "default route"; an internal network is
dashed and says so, a network with ICC off is red and says so; published ports are dotted
edges from the host to the sandbox, labelled ``host address:port -> port/proto``.

The graph is built with the ``graphviz`` package (it quotes every label), and ``dot`` (Debian's
graphviz) lays it out; DOT needs no binary.
"""

from __future__ import annotations

import graphviz

from cnm.observe.topology import NetworkNode, Port, SandboxNode, Topology

FORMATS = ("dot", "svg", "png")


def _network_label(network: NetworkNode) -> str:
    lines = [network.name, f"{network.driver}" + (f" {network.device}" if network.device else "")]
    lines += network.subnets
    if network.gateways:
        lines.append("gateway " + ", ".join(g.split("/")[0] for g in network.gateways))
    if network.internal:
        lines.append("internal: no way out")
    if not network.icc:
        lines.append("ICC off: members cannot talk")
    return "\n".join(lines)


def _sandbox_label(sandbox: SandboxNode) -> str:
    lines = [sandbox.name]
    if len(sandbox.containers) > 1:
        lines.append("shared by " + ", ".join(sandbox.containers))
    if sandbox.host_network:
        lines.append("host network")
    for interface in sandbox.interfaces:
        addresses = " ".join(a for a in (interface.ipv4, interface.ipv6) if a)
        lines.append(f"{interface.ifname} {addresses}".strip())
    return "\n".join(lines)


def _port_label(port: Port) -> str:
    host = f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip
    return f"{host}:{port.host_port} -> {port.container_port}/{port.proto}"


def graph(topology: Topology) -> graphviz.Digraph:
    dot = graphviz.Digraph("cnm", comment="cnm topology")
    dot.attr(rankdir="LR", fontname="Helvetica", bgcolor="white")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9", arrowhead="none")
    dot.node("host", f"host\n{topology.host}", shape="box3d", style="filled", fillcolor="#e8e8e8")
    for network in topology.networks:
        if network.driver in ("host", "null"):
            continue
        style = "filled,dashed" if network.internal else "filled"
        colour = "#c62828" if not network.icc else "#1565c0"
        dot.node(
            f"net-{network.id[:12]}",
            _network_label(network),
            shape="box",
            style=f"rounded,{style}",
            color=colour,
            fillcolor="#e3f2fd",
        )
        dot.edge(
            "host",
            f"net-{network.id[:12]}",
            label=network.device,
            style="dashed" if network.internal else "solid",
        )
    for sandbox in topology.sandboxes:
        node = f"sb-{sandbox.id[:12]}"
        dot.node(node, _sandbox_label(sandbox), shape="box", style="filled", fillcolor="#fff8e1")
        if sandbox.host_network:
            dot.edge("host", node, label="host network", style="dotted")
        for interface in sandbox.interfaces:
            joined = topology.network(interface.network_id)
            if joined is None or joined.driver in ("host", "null"):
                continue
            default = interface.gateway4 or interface.gateway6
            label = interface.ifname + (" (default route)" if default else "")
            dot.edge(
                f"net-{joined.id[:12]}",
                node,
                label=label,
                penwidth="2.5" if default else "1",
                style="dashed" if joined.internal else "solid",
            )
        for port in sandbox.ports:
            dot.edge(
                "host",
                node,
                label=_port_label(port),
                style="dotted",
                color="#2e7d32",
                fontcolor="#2e7d32",
                arrowhead="normal",
                constraint="false",
            )
    return dot


def render(topology: Topology, fmt: str) -> bytes:
    """The topology in ``fmt`` (dot, svg or png); svg and png need Graphviz's ``dot``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    source = graph(topology)
    if fmt == "dot":
        return source.source.encode()
    return source.pipe(format=fmt)
