"""``cnm.Lab``: networks and named, networked sandboxes for tests and experiments.

::

    with cnm.Lab() as lab:
        net = lab.network("backend")
        server = lab.sandbox("server", net, target=serve, args=(8000,))
        client = lab.sandbox("client", net)
        server.wait_for_port(8000)
        print(client.exec("python3", "-c", FETCH_SERVER).stdout)  # names resolve by DNS

Two ways to run, one API:

* **In-process** (``Lab()``, as root, no daemon): the lab makes a network namespace of its
  own that plays the host, and builds a controller there (``cnm.wiring.build_controller``)
  with an embedded DNS resolver; every controller call runs on one worker thread that lives in
  that namespace, so nothing the lab does touches the real host's interfaces, routes or
  firewall. The lab's host has no way out (no uplink, no upstream DNS). Sandboxes are bare
  sandboxes (a namespace joined to networks: the attach cost and nothing more); a sandbox with
  a ``command`` or a ``target`` runs that process on the host's filesystem with the sandbox's
  network view and its hosts/resolv.conf (through ``cnm.runtime.hostinit``, as ``cnm run --``
  does), so names of other sandboxes resolve through the embedded DNS. An image
  (``lab.image(tarball, "busybox:local")``, a root filesystem as ``docker import`` takes it)
  is unpacked for each sandbox that runs it, and its commands run chrooted there with the
  sandbox's hosts/resolv.conf bound over the image's: a busybox "container" without runc
  (no cgroups, no other namespaces than network, mount, UTS and IPC).
* **Against a daemon** (``Lab(daemon="unix:///run/cnm/cnm.sock")``): every object is made
  through the Engine API. Sandboxes are containers: ``cnm/host`` (the host's filesystem) or
  ``image=`` (e.g. ``busybox:local``, which ``lab.image`` imports); a sandbox without a
  command sleeps. Names on the daemon
  carry a prefix of this lab (``lab-<6 hex>-``), so labs in parallel (pytest-xdist workers)
  never collide; each sandbox gets its short name as a network alias, so ``server`` resolves
  from its neighbours as it does in-process.

Handles: ``Network`` (``.name``, ``.id``, ``.subnet``) and ``Sandbox`` (``.name``, ``.ip``,
``.ips``, ``.exec()``, ``.publish()``, ``.wait_for_port()``, ``.logs()``). ``publish(port)``
answers the host address of a published port: in-process it publishes it then (on
127.0.0.1 of the lab's host); on a daemon a container's ports are fixed at its start, so
they are asked for with ``lab.sandbox(..., publish=[port])``. Code that talks to sandboxes
from the test itself runs inside ``with lab.entered():`` (in-process: the lab's host
namespace; on a daemon: where you are, assumed to be the daemon's namespace).

Leaving the ``with`` block (or ``close()``) removes everything the lab made, in reverse order,
also after an exception, and goes on past a step that fails (logging it), so one stuck object
never leaves the rest behind. A target callable is passed by reference (pickle), so it must
be a module-level function of an importable module (see ``cnm.labrun``).

The import of ``cnm`` stays light: ``cnm.Lab`` is loaded on first use.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

__all__ = ["Lab", "LabError", "Network", "Sandbox"]

log = logging.getLogger(__name__)

T = TypeVar("T")
HOST_IMAGE = "cnm/host"
SLEEP = ["sleep", "infinity"]
STOP_TIMEOUT_S = 5.0


class LabError(Exception):
    """A lab cannot do what was asked; the message says why."""


@dataclass
class Network:
    """A network of a lab."""

    name: str
    id: str
    subnet: str
    internal: bool = False
    ipv6_subnet: str | None = None


@dataclass
class Sandbox:
    """A named, networked sandbox of a lab, with the process it runs (if any)."""

    name: str
    id: str
    networks: list[str]
    ips: dict[str, str]  # network name -> IPv4 address (IPv6 when the network has only that)
    ipv6: dict[str, str] = field(default_factory=dict)
    lab: Lab | None = field(default=None, repr=False)

    @property
    def ip(self) -> str:
        """The address on its first network."""
        if not self.ips:
            raise LabError(f"sandbox {self.name} is on no network")
        return self.ips[self.networks[0]]

    def ip_on(self, network: Network | str) -> str:
        name = network.name if isinstance(network, Network) else network
        try:
            return self.ips[name]
        except KeyError:
            raise LabError(f"sandbox {self.name} is not on network {name}") from None

    def exec(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the sandbox (the host's filesystem, or the image's) and wait for
        it; ``check`` raises ``LabError`` on a non-zero exit with its output."""
        assert self.lab is not None
        result = self.lab._backend.exec(self, list(command), timeout, input)
        if check and result.returncode != 0:
            raise LabError(
                f"{' '.join(command)} in {self.name} exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result

    def publish(self, port: int, proto: str = "tcp") -> tuple[str, int]:
        """``(host address, host port)`` where the sandbox's ``port`` is published."""
        assert self.lab is not None
        return self.lab._backend.publish(self, port, proto)

    def logs(self) -> str:
        """What its process wrote to stdout and stderr so far."""
        assert self.lab is not None
        return self.lab._backend.logs(self)

    def wait_for_port(self, port: int, timeout: float = 10.0) -> None:
        """Until a TCP connection to ``ip:port`` succeeds (from the lab's host)."""
        assert self.lab is not None
        deadline = time.monotonic() + timeout
        with self.lab.entered():
            while True:
                try:
                    with socket.create_connection((self.ip, port), timeout=0.5):
                        return
                except OSError as err:
                    if time.monotonic() > deadline:
                        raise LabError(
                            f"{self.name}:{port} did not accept a connection within "
                            f"{timeout}s ({err}); its output:\n{self.logs()}"
                        ) from None
                    time.sleep(0.02)


def _payload(target: Callable[..., object], args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    try:
        return base64.b64encode(pickle.dumps((target, tuple(args), kwargs))).decode()
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise LabError(
            f"cannot pass {target!r} to a sandbox: {err}; the target must be a module-level "
            "function of an importable module, and its arguments picklable"
        ) from None


def _python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


class _Backend(Protocol):
    """What a lab needs from where it runs: in-process or a daemon."""

    def network(
        self, name: str, subnet: str | None, internal: bool, icc: bool, ipv6_subnet: str | None
    ) -> Network: ...

    def sandbox(
        self,
        name: str,
        networks: list[Network],
        command: list[str] | None,
        image: str | None,
        publish: Sequence[int],
    ) -> Sandbox: ...

    def exec(
        self, sandbox: Sandbox, command: list[str], timeout: float, input: str | None
    ) -> subprocess.CompletedProcess[str]: ...

    def publish(self, sandbox: Sandbox, port: int, proto: str) -> tuple[str, int]: ...

    def logs(self, sandbox: Sandbox) -> str: ...

    def image(self, tarball: Path, name: str) -> None: ...

    def remove_sandbox(self, sandbox: Sandbox) -> None: ...

    def remove_network(self, network: Network) -> None: ...

    def entered(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- in-process


class _InProcess:
    """A controller in a namespace of the lab's own, driven from one worker thread there."""

    def __init__(self, root: Path | None) -> None:
        if os.geteuid() != 0:
            raise LabError(
                "an in-process lab needs root (it makes network namespaces); run as root, or "
                "use a daemon: Lab(daemon='unix:///run/cnm/cnm.sock')"
            )
        from cnm.osl.namespace import create_netns

        self.root = Path(root or tempfile.mkdtemp(prefix="cnm-lab-"))
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.host = create_netns(self.root / "host.netns")
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="cnm-lab", initializer=self._enter_host
        )
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._images: dict[str, Path] = {}  # name -> root filesystem tarball
        self._rootfs: dict[str, Path] = {}  # sandbox id -> its unpacked image
        self._ports: dict[str, dict[tuple[int, str], Any]] = {}
        self.controller: Any = None
        self.resolver: Any = None
        self.store: Any = None
        try:
            self._call(self._start)
        except BaseException:
            self.close()
            raise

    def _enter_host(self) -> None:
        from cnm.osl.syscalls import setns

        setns(self.host.fd)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._worker.submit(fn, *args).result()

    def _start(self) -> None:
        from cnm.controller import ControllerConfig
        from cnm.dns.resolver import Resolver
        from cnm.osl.links import sandbox_network
        from cnm.store.sqlite import SqliteStore
        from cnm.wiring import build_controller

        with sandbox_network(self.host.path) as host:
            host.bring_up_loopback(ipv6=True)
        resolv = self.root / "host-resolv.conf"
        resolv.write_text("# the lab's host has no upstream DNS\n")
        self.store = SqliteStore(self.root / "cnm.db")
        config = ControllerConfig(exec_root=self.root / "exec", host_resolv_conf=resolv)
        self.controller = build_controller(config, self.store)
        self.controller.start()
        self.resolver = Resolver(self.controller)
        self.resolver.start()

    @contextmanager
    def entered(self) -> Iterator[None]:
        with self.host.entered():
            yield

    def network(
        self, name: str, subnet: str | None, internal: bool, icc: bool, ipv6_subnet: str | None
    ) -> Network:
        from cnm.model import IpamRequest, NetworkRequest

        ipam = [IpamRequest(subnet=subnet)] if subnet else []
        if ipv6_subnet:
            ipam.append(IpamRequest(subnet=ipv6_subnet))
        request = NetworkRequest(
            name=name,
            internal=internal,
            enable_ipv6=ipv6_subnet is not None,
            options={} if icc else {"com.docker.network.bridge.enable_icc": "false"},
            ipam_config=ipam,
        )
        made = self._call(self.controller.create_network, request)
        return Network(
            name,
            made.id,
            made.ipv4_pools[0].subnet if made.ipv4_pools else "",
            internal,
            made.ipv6_pools[0].subnet if made.ipv6_pools else None,
        )

    def sandbox(
        self,
        name: str,
        networks: list[Network],
        command: list[str] | None,
        image: str | None,
        publish: Sequence[int],
    ) -> Sandbox:
        from cnm.model import EndpointOptions, SandboxOptions

        if image is not None and image not in self._images:
            raise LabError(f"no image {image} in this lab: lab.image(tarball, {image!r}) first")
        made = self._call(
            self.controller.create_sandbox,
            SandboxOptions(container_id=name, hostname=name, embedded_dns=True),
        )
        handle = Sandbox(name, made.id, [n.name for n in networks], {}, {}, None)
        try:
            for network in networks:
                endpoint = self._call(
                    self.controller.connect, network.id, made.id, EndpointOptions(name=name)
                )
                if endpoint.ipv4_address:
                    handle.ips[network.name] = endpoint.ipv4_address.split("/")[0]
                if endpoint.ipv6_address:
                    handle.ipv6[network.name] = endpoint.ipv6_address.split("/")[0]
                    handle.ips.setdefault(network.name, handle.ipv6[network.name])
            for port in publish:
                self.publish(handle, port, "tcp")
            if image is not None:
                self._rootfs[made.id] = self._unpack(self._images[image], made.id)
            if command:
                self._processes[made.id] = self._spawn(made, command)
        except BaseException:
            self.remove_sandbox(handle)
            raise
        return handle

    def image(self, tarball: Path, name: str) -> None:
        if not tarball.is_file():
            raise LabError(f"no image tarball at {tarball}")
        self._images[name] = tarball

    def _unpack(self, tarball: Path, sandbox_id: str) -> Path:
        from cnm.errors import CnmError
        from cnm.runtime.images import extract_rootfs

        rootfs = self.root / "rootfs" / sandbox_id
        try:
            extract_rootfs(tarball, rootfs)
        except CnmError as err:
            raise LabError(f"cannot unpack {tarball}: {err}") from None
        for name in ("hosts", "resolv.conf", "hostname"):  # where the sandbox's files go
            (rootfs / "etc").mkdir(exist_ok=True)
            (rootfs / "etc" / name).touch()
        return rootfs

    def _hostinit(self, sandbox_id: str, command: list[str]) -> list[str]:
        sandbox = self.controller.sandbox(sandbox_id)
        rootfs = self._rootfs.get(sandbox_id)
        etc = f"{rootfs}/etc" if rootfs else "/etc"
        binds = [
            f"--bind={self.controller.sandbox_file(sandbox_id, name)}:{etc}/{name}"
            for name in ("hosts", "resolv.conf", "hostname")
        ]
        if rootfs is not None:
            command = ["chroot", str(rootfs), *command]
        return [
            sys.executable,
            "-m",
            "cnm.runtime.hostinit",
            f"--netns={sandbox.key}",
            f"--hostname={sandbox.hostname}",
            f"--unmount-under={self.root}",
            f"--cwd={'/' if rootfs else os.getcwd()}",
            *binds,
            "--",
            *command,
        ]

    def _spawn(self, sandbox: Any, command: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.root / "logs" / f"{sandbox.id}.log"
        with open(log_path, "ab") as out:
            return subprocess.Popen(
                self._hostinit(sandbox.id, command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_python_env(),
                start_new_session=True,
            )

    def exec(
        self, sandbox: Sandbox, command: list[str], timeout: float, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        args = self._hostinit(sandbox.id, command)
        return subprocess.run(
            args, input=input, capture_output=True, text=True, timeout=timeout, env=_python_env()
        )

    def publish(self, sandbox: Sandbox, port: int, proto: str) -> tuple[str, int]:
        from cnm.model import PortRequest

        ports = self._ports.setdefault(sandbox.id, {})
        if (port, proto) not in ports:
            wanted = [PortRequest(proto, p, "127.0.0.1") for p, proto in [*ports, (port, proto)]]
            for mapping in self._call(self.controller.publish, sandbox.id, wanted):
                ports[(mapping.container_port, mapping.proto)] = mapping
            if (port, proto) not in ports:
                raise LabError(
                    f"{sandbox.name} has no network with a way out to publish {port}/{proto} on"
                )
        mapping = ports[(port, proto)]
        return str(mapping.host_ip), mapping.host_port

    def logs(self, sandbox: Sandbox) -> str:
        path = self.root / "logs" / f"{sandbox.id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove_sandbox(self, sandbox: Sandbox) -> None:
        process = self._processes.pop(sandbox.id, None)
        if process is not None:
            _end(process)
        self._ports.pop(sandbox.id, None)
        from cnm.errors import NotFound

        with suppress(NotFound):
            self._call(self.controller.delete_sandbox, sandbox.id)
        rootfs = self._rootfs.pop(sandbox.id, None)
        if rootfs is not None:
            shutil.rmtree(rootfs, ignore_errors=True)

    def remove_network(self, network: Network) -> None:
        from cnm.errors import NotFound

        with suppress(NotFound):
            self._call(self.controller.delete_network, network.id)

    def close(self) -> None:
        from cnm.osl.namespace import delete_netns

        for process in self._processes.values():
            _end(process)
        self._processes.clear()
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.resolver is not None:
            steps.append(("resolver", self.resolver.close))
        if self.controller is not None:
            steps.append(("controller", self.controller.close))
        if self.store is not None:
            steps.append(("store", self.store.close))
        for what, step in steps:
            try:
                self._call(step)
            except Exception:
                log.exception("closing the lab's %s", what)
        self._worker.shutdown(wait=True)
        self.host.close()
        _unmount_under(self.root)
        delete_netns(self.host.path)
        shutil.rmtree(self.root, ignore_errors=True)


def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL if it lingers."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _unmount_under(root: Path) -> None:
    from cnm.osl.namespace import delete_netns

    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts if " nsfs " in line]
    for point in sorted(points, reverse=True):
        if point.startswith(f"{root}/"):
            delete_netns(point)


# ----------------------------------------------------------------------------- daemon


class _Daemon:
    """Everything through the Engine API of a running daemon, under a prefix of this lab."""

    def __init__(self, host: str) -> None:
        from cnm.cli.client import Client

        self.client = Client(host)
        self.prefix = f"lab-{secrets.token_hex(3)}-"
        try:
            self.client.request("GET", "/_ping")
        except Exception as err:
            raise LabError(f"no daemon at {host}: {err}") from None

    @contextmanager
    def entered(self) -> Iterator[None]:
        yield

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        from cnm.cli.client import CliError

        try:
            return self.client.request(method, path, **kwargs)
        except CliError as err:
            raise LabError(str(err)) from None

    def network(
        self, name: str, subnet: str | None, internal: bool, icc: bool, ipv6_subnet: str | None
    ) -> Network:
        config = [{"Subnet": subnet}] if subnet else []
        if ipv6_subnet:
            config.append({"Subnet": ipv6_subnet})
        body = {
            "Name": self.prefix + name,
            "Internal": internal,
            "EnableIPv6": ipv6_subnet is not None,
            "IPAM": {"Config": config},
            "Options": {} if icc else {"com.docker.network.bridge.enable_icc": "false"},
        }
        made = self._request("POST", "/networks/create", body=body)
        data = self._request("GET", f"/networks/{made['Id']}")
        subnets = [c["Subnet"] for c in data["IPAM"]["Config"]]
        v4 = [s for s in subnets if ":" not in s]
        v6 = [s for s in subnets if ":" in s]
        return Network(name, made["Id"], v4[0] if v4 else "", internal, v6[0] if v6 else None)

    def sandbox(
        self,
        name: str,
        networks: list[Network],
        command: list[str] | None,
        image: str | None,
        publish: Sequence[int],
    ) -> Sandbox:
        first = networks[0] if networks else None
        endpoints = {
            self.prefix + n.name: {"Aliases": [name]} for n in networks[:1]
        }  # the rest are connected after create, as the docker CLI does
        body: dict[str, Any] = {
            "Image": image or HOST_IMAGE,
            "Cmd": command or SLEEP,
            "Hostname": name,
            "Env": [f"PYTHONPATH={os.pathsep.join(p for p in sys.path if p)}"],
            "WorkingDir": "" if image else os.getcwd(),
            "ExposedPorts": {f"{p}/tcp": {} for p in publish},
            "HostConfig": {
                "NetworkMode": self.prefix + first.name if first else "none",
                "PortBindings": {f"{p}/tcp": [{"HostIp": "127.0.0.1"}] for p in publish},
            },
            "NetworkingConfig": {"EndpointsConfig": endpoints},
        }
        full = self.prefix + name
        made = self._request("POST", "/containers/create", query={"name": full}, body=body)
        handle = Sandbox(name, made["Id"], [n.name for n in networks], {}, {}, None)
        try:
            for network in networks[1:]:
                self._request(
                    "POST",
                    f"/networks/{network.id}/connect",
                    body={"Container": made["Id"], "EndpointConfig": {"Aliases": [name]}},
                )
            self._request("POST", f"/containers/{made['Id']}/start")
            data = self._request("GET", f"/containers/{made['Id']}/json")
            for network in networks:
                settings = data["NetworkSettings"]["Networks"][self.prefix + network.name]
                if settings.get("GlobalIPv6Address"):
                    handle.ipv6[network.name] = settings["GlobalIPv6Address"]
                address = settings.get("IPAddress") or settings.get("GlobalIPv6Address")
                if address:
                    handle.ips[network.name] = address
        except BaseException:
            self.remove_sandbox(handle)
            raise
        return handle

    def exec(
        self, sandbox: Sandbox, command: list[str], timeout: float, input: str | None
    ) -> subprocess.CompletedProcess[str]:
        made = self._request(
            "POST",
            f"/containers/{sandbox.id}/exec",
            body={
                "Cmd": command,
                "AttachStdout": True,
                "AttachStderr": True,
                "AttachStdin": input is not None,
            },
        )
        stream = self.client.hijack("POST", f"/exec/{made['Id']}/start", body={"Detach": False})
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            stream.sock.settimeout(timeout)
            if input is not None:
                stream.send(input.encode())
                stream.close_write()
            for channel, data in stream.frames(multiplexed=True):
                (err if channel == 2 else out).append(data)
        finally:
            stream.close()
        code = self._request("GET", f"/exec/{made['Id']}/json")["ExitCode"]
        return subprocess.CompletedProcess(
            command,
            code,
            b"".join(out).decode(errors="replace"),
            b"".join(err).decode(errors="replace"),
        )

    def publish(self, sandbox: Sandbox, port: int, proto: str) -> tuple[str, int]:
        data = self._request("GET", f"/containers/{sandbox.id}/json")
        bindings = (data["NetworkSettings"].get("Ports") or {}).get(f"{port}/{proto}") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return binding["HostIp"], int(binding["HostPort"])
        raise LabError(
            f"{sandbox.name} publishes no {port}/{proto}: on a daemon, ports are published when "
            f"the sandbox starts: lab.sandbox({sandbox.name!r}, ..., publish=[{port}])"
        )

    def logs(self, sandbox: Sandbox) -> str:
        response = self.client.open(
            "GET", f"/containers/{sandbox.id}/logs", query={"stdout": "1", "stderr": "1"}
        )
        from cnm.cli.client import frames

        try:
            return b"".join(data for _, data in frames(response, True)).decode(errors="replace")
        finally:
            response.close()

    def image(self, tarball: Path, name: str) -> None:
        from cnm.cli.client import CliError

        repo, _, tag = name.partition(":")
        try:
            with open(tarball, "rb") as upload:
                response = self.client.open(
                    "POST",
                    "/images/create",
                    query={"fromSrc": "-", "repo": repo, "tag": tag or "latest"},
                    upload=upload,
                    upload_size=os.fstat(upload.fileno()).st_size,
                    forever=True,
                )
                lines = response.read().decode().splitlines()
                response.close()
        except OSError as err:
            raise LabError(f"cannot read {tarball}: {err.strerror}") from None
        except CliError as err:
            raise LabError(str(err)) from None
        for line in lines:
            if "error" in line:
                raise LabError(f"importing {tarball}: {line}")

    def remove_sandbox(self, sandbox: Sandbox) -> None:
        from cnm.cli.client import ApiError

        try:
            self.client.request("DELETE", f"/containers/{quote(sandbox.id)}", query={"force": "1"})
        except ApiError as err:
            if err.status != 404:
                raise LabError(str(err)) from None

    def remove_network(self, network: Network) -> None:
        from cnm.cli.client import ApiError

        try:
            self.client.request("DELETE", f"/networks/{quote(network.id)}")
        except ApiError as err:
            if err.status != 404:
                raise LabError(str(err)) from None

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- the lab


class Lab:
    """Networks and sandboxes, removed together when the lab closes.

    ``daemon``: a daemon's socket (``unix:///run/cnm/cnm.sock``) to make everything there;
    None (the default) works in-process as root. ``root``: the in-process lab's directory
    (default: a new temporary one, removed on close)."""

    def __init__(
        self, daemon: str | None = None, *, root: str | os.PathLike[str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._networks: list[Network] = []
        self._sandboxes: list[Sandbox] = []
        self._closed = False
        self._backend: _Backend = (
            _Daemon(daemon) if daemon else _InProcess(Path(root) if root else None)
        )

    # ----------------------------------------------------------------- objects

    def network(
        self,
        name: str | None = None,
        *,
        subnet: str | None = None,
        internal: bool = False,
        icc: bool = True,
        ipv6_subnet: str | None = None,
    ) -> Network:
        """A bridge network (a subnet from Docker's pools unless given)."""
        self._check_open()
        name = name or f"net{len(self._networks) + 1}"
        for text in (subnet, ipv6_subnet):
            if text is not None:
                try:
                    ipaddress.ip_network(text)
                except ValueError as err:
                    raise LabError(f"invalid subnet {text!r}: {err}") from None
        network = self._backend.network(name, subnet, internal, icc, ipv6_subnet)
        with self._lock:
            self._networks.append(network)
        return network

    def sandbox(
        self,
        name: str,
        *networks: Network,
        command: Sequence[str] | None = None,
        target: Callable[..., object] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        image: str | None = None,
        publish: Sequence[int] = (),
    ) -> Sandbox:
        """A sandbox on ``networks`` (the first carries its default route), running
        ``command``, or ``target(*args, **kwargs)`` in a Python process of its own, or nothing
        (a bare sandbox in-process; ``sleep`` on a daemon)."""
        self._check_open()
        if command is not None and target is not None:
            raise LabError("give a sandbox a command or a target, not both")
        if any(s.name == name for s in self._sandboxes):
            raise LabError(f"this lab has a sandbox named {name} already")
        run = list(command) if command is not None else None
        if target is not None:
            run = [sys.executable, "-m", "cnm.labrun", _payload(target, args, kwargs or {})]
        sandbox = self._backend.sandbox(name, list(networks), run, image, list(publish))
        sandbox.lab = self
        with self._lock:
            self._sandboxes.append(sandbox)
        return sandbox

    def image(self, tarball: str | os.PathLike[str], name: str) -> str:
        """Make ``name`` (e.g. ``busybox:local``) an image of this lab from a root-filesystem
        tarball, as ``docker import`` takes one; returns the name, for ``sandbox(image=...)``.
        On a daemon it is imported there (and stays, as images do)."""
        self._check_open()
        self._backend.image(Path(tarball), name)
        return name

    def remove(self, item: Sandbox | Network) -> None:
        """Remove one sandbox or network now (a network's sandboxes first)."""
        if isinstance(item, Sandbox):
            self._backend.remove_sandbox(item)
            with self._lock:
                self._sandboxes.remove(item)
        else:
            self._backend.remove_network(item)
            with self._lock:
                self._networks.remove(item)

    @property
    def sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes)

    @property
    def networks(self) -> list[Network]:
        return list(self._networks)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body where the lab's sandboxes and published ports are reachable (the
        lab's host namespace, in-process)."""
        with self._backend.entered():
            yield

    # ----------------------------------------------------------------- lifetime

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("this lab is closed")

    def close(self) -> None:
        """Remove everything the lab made (sandboxes, then networks, then the lab's own
        host); a step that fails is logged and the rest still goes."""
        if self._closed:
            return
        self._closed = True
        for sandbox in reversed(self._sandboxes):
            try:
                self._backend.remove_sandbox(sandbox)
            except Exception:
                log.exception("removing sandbox %s", sandbox.name)
        for network in reversed(self._networks):
            try:
                self._backend.remove_network(network)
            except Exception:
                log.exception("removing network %s", network.name)
        self._sandboxes.clear()
        self._networks.clear()
        self._backend.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
