"""``/version`` and ``/info`` carry the fields and JSON types the docker CLI decodes."""

from __future__ import annotations

from cnm.api import API_VERSION, MIN_API_VERSION
from cnm.api.common import DaemonInfo
from cnm.api.system import info_json, version_json


def test_version_has_dockers_fields() -> None:
    data = version_json()
    assert data["ApiVersion"] == API_VERSION
    assert data["MinAPIVersion"] == MIN_API_VERSION
    assert data["Os"] == "linux"
    (engine,) = data["Components"]
    assert engine["Name"] == "Engine"
    assert all(isinstance(v, str) for v in engine["Details"].values())
    assert {"Version", "GitCommit", "GoVersion", "Arch", "KernelVersion", "BuildTime"} <= set(data)


def test_info_types() -> None:
    info = DaemonInfo("id-1", "/var/lib/cnm", "/run/cnm", [("10.20.0.0/16", 24)])
    data = info_json(info, ["bridge", "host", "null"])
    assert data["ID"] == "id-1"
    assert data["Plugins"]["Network"] == ["bridge", "host", "null"]
    assert data["DefaultAddressPools"] == [{"Base": "10.20.0.0/16", "Size": 24}]
    for key in ("Containers", "ContainersRunning", "Images", "NCPU", "MemTotal", "NFd"):
        assert isinstance(data[key], int) and not isinstance(data[key], bool), key
    for key in ("Driver", "Name", "ServerVersion", "KernelVersion", "OperatingSystem", "OSType"):
        assert isinstance(data[key], str), key
    for key in ("Debug", "MemoryLimit", "IPv4Forwarding", "LiveRestoreEnabled"):
        assert isinstance(data[key], bool), key
    assert data["Swarm"]["LocalNodeState"] == "inactive"
    assert isinstance(data["DriverStatus"], list)
    assert isinstance(data["RegistryConfig"]["IndexConfigs"], dict)
