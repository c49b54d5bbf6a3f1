"""Pure logic of the overlay driver's OS layer: neighbour-table thresholds (only ever raised),
the kernel configuration that tells whether ESP is there, and VNI parsing."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cnm.drivers.overlay import parse_vni
from cnm.errors import InvalidParameter
from cnm.osl.ipsec import kernel_config, missing_for_esp
from cnm.osl.neighbour_table import raised_thresholds, room_for


@pytest.mark.parametrize(
    ("entries", "room"), [(0, 1), (1, 1), (2, 2), (3, 4), (128, 128), (129, 256), (500, 512)]
)
def test_room_is_the_power_of_two_at_or_above(entries: int, room: int) -> None:
    assert room_for(entries) == room


def test_thresholds_are_raised_only_when_needed_and_never_lowered() -> None:
    defaults = (128, 512, 1024)
    assert raised_thresholds(defaults, 0) is None
    assert raised_thresholds(defaults, 128) is None
    assert raised_thresholds(defaults, 129) == (256, 512, 1024)
    assert raised_thresholds(defaults, 500) == (512, 1024, 2048)
    assert raised_thresholds(defaults, 5000) == (8192, 16384, 32768)
    generous = (4096, 8192, 65536)  # an administrator's values stay where they are higher
    assert raised_thresholds(generous, 3000) is None
    assert raised_thresholds(generous, 5000) == (8192, 16384, 65536)


CONFIG = """\
CONFIG_MODULES=y
CONFIG_XFRM_USER=y
# CONFIG_INET_ESP is not set
CONFIG_INET6_ESP=m
CONFIG_CRYPTO_GCM=y
CONFIG_LOCALVERSION="-test"
"""


def test_the_kernel_configuration_names_what_esp_lacks(tmp_path: Path) -> None:
    plain = tmp_path / "config-6.1"
    plain.write_text(CONFIG)
    packed = tmp_path / "config.gz"
    packed.write_bytes(gzip.compress(CONFIG.encode()))
    for path in (plain, packed):
        config = kernel_config([tmp_path / "absent", path])
        assert config is not None and config["CONFIG_LOCALVERSION"] == "-test"
        assert missing_for_esp(config) == ["CONFIG_INET_ESP is not set"]
    without_modules = {**CONFIG_DICT, "CONFIG_MODULES": "n"}
    assert missing_for_esp(without_modules) == [
        "CONFIG_INET_ESP is not set",
        "CONFIG_INET6_ESP=m without module support",
        "no module can be loaded (CONFIG_MODULES is not set)",
    ]
    assert kernel_config([tmp_path / "absent"]) is None
    assert missing_for_esp(None) is None


CONFIG_DICT = {
    "CONFIG_MODULES": "y",
    "CONFIG_XFRM_USER": "y",
    "CONFIG_INET6_ESP": "m",
    "CONFIG_CRYPTO_GCM": "y",
}


@pytest.mark.parametrize("text", ["1", "4096", "16777215"])
def test_a_named_vni_in_range_is_taken(text: str) -> None:
    assert parse_vni(text) == int(text)


@pytest.mark.parametrize("text", ["0", "-1", "16777216", "", "4096,4097", "0x10"])
def test_a_named_vni_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_vni(text)
