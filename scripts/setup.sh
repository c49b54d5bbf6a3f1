#!/usr/bin/env bash
# Set up cnm on a Debian 12 machine, as root: system packages through apt, a virtualenv in
# .venv, and the package installed into it (editable). Safe to run again: it only installs
# what is missing. `scripts/setup.sh --test` adds what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# runc runs containers of images; graphviz renders `cnm topology` as SVG or PNG; docker.io
# brings the Docker 20.10 CLI the README's tour uses against cnm's socket (its own dockerd is
# never started); etcd-server is the cluster store of overlay networks (`cnm daemon
# --cluster-store`; cnm does not start it).
packages=(iproute2 util-linux nftables python3-nftables python3-venv python3-pip runc graphviz
    docker.io etcd-server etcd-client)
extras=".[test]"
if [ "${1:-}" = "--test" ]; then
    # containernetworking-plugins brings the reference CNI plugins (bridge, loopback, tuning)
    # that the CNI tests and bench/cni.py run beside cnm-cni; chromium and chromium-driver are
    # the headless browser the topology page is tested in; docker-compose (1.29.2, built on
    # docker-py) drives Compose projects against the daemon. The cluster-store tests start
    # their own etcd on their own ports.
    packages+=(docker-compose busybox-static iptables iperf3 containernetworking-plugins chromium chromium-driver)
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
