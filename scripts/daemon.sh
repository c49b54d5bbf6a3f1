#!/usr/bin/env bash
# Set everything up and start the daemon in the foreground (as root). Extra arguments go to
# `cnm daemon` (see `cnm daemon --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cnm daemon "$@"
