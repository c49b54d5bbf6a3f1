"""What the running kernel lacks for IPsec ESP, as an encrypted overlay would need it.

An encrypted overlay (docs/overlay-encryption.md) wraps each host pair's VXLAN packets in ESP
transport mode with AES-GCM (``rfc4106(gcm(aes))``, as Docker does): that needs the XFRM
netlink interface (CONFIG_XFRM_USER), the ESP transforms for IPv4 and IPv6 underlays
(CONFIG_INET_ESP, CONFIG_INET6_ESP) and GCM (CONFIG_CRYPTO_GCM). A kernel without ESP still
accepts ``ip xfrm state`` listings and keeps /proc/net/xfrm_stat (those come with CONFIG_XFRM);
it only refuses an ESP state when one is added ("Requested type not found"). So the answer
comes from the kernel's build configuration (/proc/config.gz, else /boot/config-<release>):
an option that is neither built in nor a module, or a module on a kernel without module
support, is missing.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from pathlib import Path

NEEDED = ("CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_INET6_ESP", "CONFIG_CRYPTO_GCM")


def kernel_config(paths: Iterable[Path] | None = None) -> dict[str, str] | None:
    """The running kernel's build options (``CONFIG_X`` -> ``y``/``m``/value); None when no
    configuration can be read."""
    if paths is None:
        paths = (Path("/proc/config.gz"), Path(f"/boot/config-{os.uname().release}"))
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        options = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.startswith("CONFIG_"):
                options[name] = value.strip('"')
        return options
    return None


def missing_for_esp(config: dict[str, str] | None) -> list[str] | None:
    """The options of ``NEEDED`` this configuration lacks, each as ``CONFIG_X is not set``
    (or ``CONFIG_X=m without module support``), and whether modules could supply them; None
    when the configuration is unknown."""
    if config is None:
        return None
    modules = config.get("CONFIG_MODULES") == "y"
    missing = []
    for option in NEEDED:
        value = config.get(option)
        if value == "y" or (value == "m" and modules):
            continue
        missing.append(
            f"{option}=m without module support" if value == "m" else f"{option} is not set"
        )
    if missing and not modules:
        missing.append("no module can be loaded (CONFIG_MODULES is not set)")
    return missing


def esp_missing() -> list[str] | None:
    """What the running kernel lacks for ESP (empty: nothing), or None when unknown."""
    return missing_for_esp(kernel_config())
