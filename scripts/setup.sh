#!/usr/bin/env bash
# Set up cnm on a Debian 12 machine, as root: system packages through apt, a virtualenv in
# .venv, and the package installed into it (editable). Safe to run again: it only installs
# what is missing. `scripts/setup.sh --test` adds what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# runc runs containers of images; graphviz renders `cnm topology` as SVG or PNG.
packages=(iproute2 util-linux nftables python3-nftables python3-venv python3-pip runc graphviz)
extras=".[test]"
if [ "${1:-}" = "--test" ]; then
    # docker.io brings the Docker 20.10 CLI the client tests drive; etcd-server brings the etcd
    # (3.4) the cluster-store tests start on their own ports. Neither service is ever started.
    # containernetworking-plugins brings the reference CNI plugins (bridge, loopback, tuning)
    # that the CNI tests and bench/cni.py run beside cnm-cni; chromium and chromium-driver are
    # the headless browser the topology page is tested in; docker-compose (1.29.2, built on
    # docker-py) drives Compose projects against the daemon.
    packages+=(docker.io docker-compose busybox-static iptables iperf3 etcd-server etcd-client containernetworking-plugins chromium chromium-driver)
else
    extras="."
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    # Keep package scripts from starting services (dockerd, etcd) while installing.
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
fi

# Debian's python3 so the venv can see python3-nftables (libnftables' own binding).
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=".venv/.cnm-installed-$(sha256sum pyproject.toml | cut -c1-16)${1:-}"
if [ ! -e "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e "$extras"
    touch "$stamp"
fi
