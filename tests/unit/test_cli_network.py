"""Pure parts of ``cnm network``: flag parsing, docker's IPAM pairing, ls rows and formats."""

from __future__ import annotations

import json

import pytest

from cnm.cli.client import CliError
from cnm.cli.format import go_string, header, render, tabulate
from cnm.cli.network import (
    LS_HEADERS,
    _go_time,
    _ls_row,
    _natural_key,
    consolidate_ipam,
    filter_args,
    key_values,
)


def test_key_values() -> None:
    assert key_values(["a=b", "c", "d=e=f"], "label") == {"a": "b", "c": "", "d": "e=f"}
    with pytest.raises(CliError, match="invalid label '=x'"):
        key_values(["=x"], "label")


def test_filter_args_encode_like_docker() -> None:
    encoded = filter_args(["name=web", "Label=a=b", "label=c", "name=db"])
    assert json.loads(encoded) == {
        "name": {"web": True, "db": True},
        "label": {"a=b": True, "c": True},
    }
    with pytest.raises(CliError, match="bad format of filter"):
        filter_args(["dangling"])


def test_consolidate_pairs_each_value_with_its_subnet() -> None:
    configs = consolidate_ipam(
        ["10.1.0.0/24", "fd00::/64"],
        ["10.1.0.128/25"],
        ["fd00::1", "10.1.0.1"],
        {"router": "10.1.0.5", "r6": "fd00::5"},
    )
    assert configs == [
        {
            "Subnet": "10.1.0.0/24",
            "IPRange": "10.1.0.128/25",
            "Gateway": "10.1.0.1",
            "AuxiliaryAddresses": {"router": "10.1.0.5"},
        },
        {"Subnet": "fd00::/64", "Gateway": "fd00::1", "AuxiliaryAddresses": {"r6": "fd00::5"}},
    ]
    assert consolidate_ipam([], [], [], {}) == []


@pytest.mark.parametrize(
    ("subnets", "ranges", "gateways", "aux", "message"),
    [
        ([], [], ["10.0.0.1"], {}, "every ip-range or gateway must have a corresponding subnet"),
        (["10.0.0.0/24"], [], ["10.9.0.1"], {}, "no matching subnet for gateway 10.9.0.1"),
        (["10.0.0.0/24"], ["10.9.0.0/25"], [], {}, "no matching subnet for range 10.9.0.0/25"),
        (["10.0.0.0/24"], [], [], {"a": "10.9.0.9"}, "no matching subnet for aux-address"),
        (["10.0.0.0/16", "10.0.1.0/24"], [], [], {}, "multiple overlapping subnet"),
        (["nonsense"], [], ["10.0.0.1"], {}, "invalid subnet nonsense"),
        (
            ["10.0.0.0/24", "10.1.0.0/24"],
            [],
            ["10.0.0.1", "10.0.0.2"],
            {},
            "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet",
        ),
    ],
)
def test_consolidate_refuses_like_docker(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str], message: str
) -> None:
    with pytest.raises(CliError) as info:
        consolidate_ipam(subnets, ranges, gateways, aux)
    assert message in str(info.value)


def test_natural_sort_order() -> None:
    names = ["net10", "net2", "bridge", "net1"]
    assert sorted(names, key=_natural_key) == ["bridge", "net1", "net2", "net10"]


def test_go_time() -> None:
    assert _go_time("2025-01-02T03:04:05.120000000Z") == "2025-01-02 03:04:05.12 +0000 UTC"
    assert _go_time("2025-01-02T03:04:05Z") == "2025-01-02 03:04:05 +0000 UTC"


NETWORK = {
    "Id": "0123456789ab" + "f" * 52,
    "Name": "web",
    "Driver": "bridge",
    "Scope": "local",
    "EnableIPv6": True,
    "Internal": False,
    "Labels": {"b": "2", "a": "1"},
    "Created": "2025-01-02T03:04:05.000000000Z",
}


def test_ls_row() -> None:
    row = _ls_row(NETWORK, no_trunc=False)
    assert row["ID"] == "0123456789ab"
    assert row["IPv6"] == "true"
    assert row["Labels"] == "a=1,b=2"
    assert _ls_row(NETWORK, no_trunc=True)["ID"] == NETWORK["Id"]


def test_table_is_aligned_like_tabwriter() -> None:
    template = "{{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}"
    lines = [header(template, LS_HEADERS), render(template, _ls_row(NETWORK, no_trunc=False))]
    assert tabulate(lines).splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "0123456789ab   web       bridge    local",
    ]


def test_templates() -> None:
    data = {"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}]}, "Labels": {"a": "b"}}
    assert render("{{.Name}}", data) == "n"
    assert render("{{ .Name }}:{{json .IPAM.Config}}", data) == 'n:[{"Subnet":"10.0.0.0/24"}]'
    assert render("{{json .}}", {"a": 1}) == '{"a":1}'
    assert render("{{.Labels}} {{.Missing}}", data) == "map[a:b] <no value>"
    with pytest.raises(CliError, match="unsupported format action"):
        render("{{range .Labels}}x{{end}}", data)


def test_go_string() -> None:
    assert go_string(True) == "true"
    assert go_string(["a", 1]) == "[a 1]"
    assert go_string({"b": False, "a": None}) == "map[a:<no value> b:false]"
