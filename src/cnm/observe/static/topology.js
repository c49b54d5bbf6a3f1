// The live topology: follows /cnm/topology/events and redraws with Cytoscape.js.
// A page served under /ui/ finds the API one level up.
"use strict";

const api = (path) => new URL(path, window.location.href.replace(/\/ui\/.*$/, "/")).toString();
const cy = cytoscape({
  container: document.getElementById("graph"),
  wheelSensitivity: 0.3,
  style: [
    { selector: "node", style: {
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
        "font-size": 10, "shape": "round-rectangle", "width": "label", "height": "label",
        "padding": 8, "background-color": "#fff8e1", "border-width": 1, "border-color": "#8d6e63" } },
    { selector: "node.host", style: { "background-color": "#e0e0e0", "border-color": "#424242" } },
    { selector: "node.network", style: { "background-color": "#e3f2fd", "border-color": "#1565c0" } },
    { selector: "node.internal", style: { "border-style": "dashed" } },
    { selector: "node.icc-off", style: { "border-color": "#c62828", "border-width": 2 } },
    { selector: "edge", style: {
        "label": "data(label)", "font-size": 8, "width": 1, "curve-style": "bezier",
        "line-color": "#90a4ae", "text-background-color": "#fff", "text-background-opacity": 0.8 } },
    { selector: "edge.default-route", style: { "width": 3, "line-color": "#37474f" } },
    { selector: "edge.internal", style: { "line-style": "dashed" } },
    { selector: "edge.port", style: {
        "line-style": "dotted", "line-color": "#2e7d32", "color": "#2e7d32",
        "target-arrow-shape": "triangle", "target-arrow-color": "#2e7d32" } },
    { selector: ":selected", style: { "border-width": 3, "border-color": "#ff6f00" } },
  ],
});

function elements(topology) {
  const found = [{ group: "nodes", data: { id: "host", label: "host\n" + topology.host }, classes: "host" }];
  const shown = new Set();
  for (const net of topology.networks) {
    if (net.driver === "host" || net.driver === "null") continue;
    shown.add(net.id);
    const lines = [net.name, net.driver + (net.device ? " " + net.device : ""), ...net.subnets];
    if (net.internal) lines.push("internal");
    if (!net.icc) lines.push("ICC off");
    const classes = ["network", net.internal ? "internal" : "", net.icc ? "" : "icc-off"].join(" ");
    found.push({ group: "nodes", data: { id: "net-" + net.id, label: lines.join("\n"), kind: "network", ref: net.id }, classes });
    found.push({ group: "edges", data: { id: "host-" + net.id, source: "host", target: "net-" + net.id, label: net.gateways.join(" ") },
                 classes: net.internal ? "internal" : "" });
  }
  for (const box of topology.sandboxes) {
    const lines = [box.name, ...box.interfaces.map((i) => [i.ifname, i.ipv4, i.ipv6].filter(Boolean).join(" "))];
    const ref = box.containers.length ? box.containers[0] : box.id;
    found.push({ group: "nodes", data: { id: "sb-" + box.id, label: lines.join("\n"), kind: "container", ref, record: box } });
    for (const i of box.interfaces) {
      if (!shown.has(i.network_id)) continue;
      const classes = (i.gateway4 || i.gateway6 ? "default-route " : "") +
                      (topology.networks.find((n) => n.id === i.network_id).internal ? "internal" : "");
      found.push({ group: "edges", data: { id: "if-" + i.endpoint_id, source: "net-" + i.network_id, target: "sb-" + box.id, label: i.ifname }, classes });
    }
    box.ports.forEach((p, n) => {
      const host = p.host_ip.includes(":") ? "[" + p.host_ip + "]" : p.host_ip;
      found.push({ group: "edges", data: { id: "port-" + box.id + "-" + n, source: "host", target: "sb-" + box.id,
                   label: host + ":" + p.host_port + " → " + p.container_port + "/" + p.proto }, classes: "port" });
    });
  }
  return found;
}

function draw(topology) {
  const wanted = elements(topology);
  const ids = new Set(wanted.map((e) => e.data.id));
  cy.batch(() => {
    cy.elements().filter((e) => !ids.has(e.id())).remove();
    for (const e of wanted) {
      const existing = cy.getElementById(e.data.id);
      if (existing.nonempty()) {
        existing.data(e.data);
        existing.classes(e.classes || "");
      } else {
        cy.add(e);
      }
    }
  });
  // Published-port edges would pull a container up next to the networks: lay out without them.
  cy.elements().not("edge.port").layout(
    { name: "breadthfirst", roots: "#host", directed: true, spacingFactor: 1.1, animate: false }).run();
  const networks = topology.networks.filter((n) => n.driver !== "host" && n.driver !== "null").length;
  document.getElementById("counts").textContent =
    networks + " networks, " + topology.sandboxes.length + " sandboxes";
  document.body.dataset.version = String(Number(document.body.dataset.version || 0) + 1);
}

async function show(node) {
  const details = document.getElementById("details");
  const kind = node.data("kind");
  if (!kind) return;
  const path = kind === "network" ? "networks/" + encodeURIComponent(node.data("ref"))
                                  : "containers/" + encodeURIComponent(node.data("ref")) + "/json";
  let text;
  try {
    const response = await fetch(api(path));
    text = JSON.stringify(await response.json(), null, 2);
    if (!response.ok && node.data("record")) text = JSON.stringify(node.data("record"), null, 2);
  } catch (err) {
    text = String(err);
  }
  details.innerHTML = "";
  const title = document.createElement("h2");
  title.textContent = (kind === "network" ? "network " : "container ") + node.data("label").split("\n")[0];
  const pre = document.createElement("pre");
  pre.id = "inspect";
  pre.textContent = text;
  details.append(title, pre);
}

cy.on("tap", "node", (event) => show(event.target));

document.getElementById("explain").addEventListener("submit", async (event) => {
  event.preventDefault();
  const from = document.getElementById("explain-from").value;
  const to = document.getElementById("explain-to").value;
  const response = await fetch(api("cnm/explain?" + new URLSearchParams({ from, to })));
  const answer = await response.json();
  const details = document.getElementById("details");
  details.innerHTML = "";
  const verdict = document.createElement("p");
  if (!response.ok) {
    verdict.textContent = answer.message;
  } else {
    verdict.className = answer.Reachable ? "reachable" : "unreachable";
    verdict.textContent = (answer.Reachable ? "reachable: " : "unreachable: ") + answer.Reason;
  }
  const pre = document.createElement("pre");
  pre.textContent = response.ok ? answer.Path.map((s) => "[" + s.where + "] " + s.text).join("\n") : "";
  details.append(verdict, pre);
});

function follow() {
  const status = document.getElementById("status");
  const events = new EventSource(api("cnm/topology/events"));
  events.addEventListener("topology", (event) => {
    status.textContent = "live";
    status.className = "live";
    draw(JSON.parse(event.data));
  });
  events.onerror = () => {
    status.textContent = "reconnecting";
    status.className = "down";
  };
}

follow();
