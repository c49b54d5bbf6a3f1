"""Terminals and stdin through the real clients: ``docker run -t``, ``-i`` with piped input,
``-it`` on a pseudo-terminal (typing, exit code, the terminal's size at start and after a
SIGWINCH; the detach keys), ``docker attach`` and docker-py's attach socket on a running ``-i``
container, docker-py's ``run(tty=True)`` and resize, the resize endpoints' refusals, ``cnm run
-i/-t``, and both kinds of stdio across a daemon restart."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.support.daemon import Daemon, DockerCli, running_daemon
from tests.support.runtime import BUSYBOX_TAR

EXPECT_TIMEOUT_S = 20.0


def _run_with_input(docker: DockerCli, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker.binary, *args],
        env=docker.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class Terminal:
    """A docker CLI on a pseudo-terminal of ours, as a user at a terminal runs it."""

    def __init__(self, docker: DockerCli, *args: str, rows: int = 24, columns: int = 80) -> None:
        self.master, slave = os.openpty()
        _set_size(slave, rows, columns)
        self.process = subprocess.Popen(
            [docker.binary, *args],
            env={**docker.env, "TERM": "xterm"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: bytes) -> re.Match[bytes]:
        """Read until ``pattern`` appears in what the CLI printed since the last match."""
        deadline = time.monotonic() + EXPECT_TIMEOUT_S
        while (match := re.search(pattern, self.seen)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never came; the terminal shows {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # EIO: the CLI is gone
                    assert re.search(pattern, self.seen), f"{pattern!r} not in {self.seen!r}"
        self.seen = self.seen[match.end() :]
        return match

    def resize(self, rows: int, columns: int) -> None:
        _set_size(self.master, rows, columns)
        self.process.send_signal(signal.SIGWINCH)  # no controlling terminal: tell it ourselves

    def close(self) -> int:
        try:
            return self.process.wait(EXPECT_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    made: list[Terminal] = []

    def make(docker: DockerCli, *args: str, **size: int) -> Terminal:
        made.append(Terminal(docker, *args, **size))
        return made[-1]

    yield make
    for terminal in made:
        if terminal.process.poll() is None:
            terminal.close()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    yield client
    client.close()


def test_run_t_gives_a_terminal(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    name = containers("tty")
    out = docker("run", "-t", "--name", name, busybox, "sh", "-c", "tty; echo hi").stdout
    assert re.fullmatch(r"/dev/pts/\d+\r?\nhi\r?\n", out), repr(out)
    assert docker("inspect", "-f", "{{.Config.Tty}}", name).stdout == "true\n"
    assert re.fullmatch(r"/dev/pts/\d+\r?\nhi\r?\n", docker("logs", name).stdout)
    out = docker("run", "-t", "--rm", busybox, "sh", "-c", "tty; echo hi").stdout
    assert re.fullmatch(r"/dev/pts/\d+\r?\nhi\r?\n", out), repr(out)


def test_run_i_reads_piped_input(docker: DockerCli, busybox: str) -> None:
    done = _run_with_input(
        docker, "hello\nthe rest\n", "run", "-i", "--rm", busybox, "sh", "-c",
        "read x; echo got $x; cat; exit 3",
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "got hello\nthe rest\n"), done.stderr


def test_run_i_passes_a_large_input_through(docker: DockerCli, busybox: str) -> None:
    data = "x" * (1 << 20)
    done = _run_with_input(docker, data, "run", "-i", "--rm", busybox, "wc", "-c")
    assert (done.returncode, done.stdout.strip()) == (0, str(len(data))), done.stderr


def test_run_it_on_a_terminal(
    docker: DockerCli, busybox: str, terminals: Callable[..., Terminal]
) -> None:
    term = terminals(docker, "run", "-it", "--rm", busybox, "sh", rows=24, columns=80)
    term.expect(rb"# ")  # the shell's prompt: the session is up before anything is typed
    term.type("echo $((6 * 7)) $TERM; stty size\r")
    term.expect(rb"42 xterm\r\n24 80\r\n")  # the size came with the create (ConsoleSize)
    term.resize(30, 100)
    for _ in range(50):  # the CLI sends the new size when it gets around to it
        term.type("stty size\r")
        if term.expect(rb"\d+ \d+\r\n").group(0) == b"30 100\r\n":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the new terminal size never reached the container")
    term.type("exit 7\r")
    assert term.close() == 7


def test_detach_keys_leave_it_running_and_attach_comes_back(
    docker: DockerCli,
    busybox: str,
    containers: Callable[[str], str],
    terminals: Callable[..., Terminal],
) -> None:
    name = containers("detach")
    term = terminals(docker, "run", "-it", "--name", name, busybox, "sh")
    term.expect(rb"# ")  # the shell's prompt: the session is up before anything is typed
    term.type("echo $((2 + 3))\r")
    term.expect(rb"5\r\n")
    term.type("\x10\x11")  # Ctrl-P Ctrl-Q: the CLI lets go, the container runs on
    assert term.close() == 0
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout == "true\n"
    again = terminals(docker, "attach", name)
    again.type("echo back $((3 + 4))\r")
    again.expect(rb"back 7\r\n")
    again.type("exit 6\r")
    assert again.close() == 6
    assert "back 7" in docker("logs", name).stdout


def test_exec_it_on_a_terminal(
    docker: DockerCli,
    busybox: str,
    containers: Callable[[str], str],
    terminals: Callable[..., Terminal],
) -> None:
    name = containers("exec-tty")
    docker("run", "-d", "--name", name, busybox, "sleep", "1000")
    term = terminals(docker, "exec", "-it", name, "sh", rows=33, columns=120)
    term.expect(rb"# ")  # the shell's prompt: the session is up before anything is typed
    term.type("stty size; tty\r")
    term.expect(rb"33 120\r\n/dev/pts/\d+\r\n")
    term.type("exit 5\r")
    assert term.close() == 5


def test_attach_sends_input_to_a_running_container(
    docker: DockerCli, busybox: str, containers: Callable[[str], str]
) -> None:
    # Created with -i: StdinOnce, so the end of the attached input is the container's, and the
    # attach goes on until it exits (without StdinOnce it ends the attach; docker-py's test).
    name = containers("attach")
    docker("create", "-i", "--name", name, busybox, "sh", "-c", "read x; echo got $x; exit 4")
    template = "{{.Config.OpenStdin}} {{.Config.StdinOnce}}"
    assert docker("inspect", "-f", template, name).stdout == "true true\n"
    docker("start", name)
    attached = _run_with_input(docker, "typed\n", "attach", name)
    assert (attached.returncode, attached.stdout) == (4, "got typed\n"), attached.stderr
    assert docker("logs", name).stdout == "got typed\n"


def _attach(daemon: Daemon, name: str) -> socket.socket:
    """docker-py's attach socket: stdin in, multiplexed output out."""
    client = docker.APIClient(base_url=daemon.host)
    sock = client.attach_socket(name, params={"stdin": 1, "stdout": 1, "stream": 1})
    client.close()
    raw: socket.socket = sock._sock  # the hijacked connection under docker-py's wrapper
    raw.settimeout(EXPECT_TIMEOUT_S)
    return raw


def test_attach_socket_input_and_detach_leave_it_running(
    daemon: Daemon, client: docker.DockerClient, busybox: str, containers: Callable[[str], str]
) -> None:
    container = client.containers.run(
        busybox, ["sh", "-c", "while read l; do echo got $l; done"],
        name=containers("loop"), stdin_open=True, detach=True,
    )  # fmt: skip
    for word in ("one", "two"):
        sock = _attach(daemon, container.name)
        sock.sendall(word.encode() + b"\n")
        header = sock.recv(8, socket.MSG_WAITALL)
        assert struct.unpack(">BxxxL", header) == (1, len(f"got {word}\n"))
        assert sock.recv(64) == f"got {word}\n".encode()
        sock.shutdown(socket.SHUT_WR)  # the end of this client's input: the attach ends ...
        assert sock.recv(64) == b""
        sock.close()
        container.reload()
        assert container.status == "running"  # ... and the container's stdin stays open
    assert container.logs() == b"got one\ngot two\n"
    container.remove(force=True)


def test_docker_py_tty_run_and_resize(
    client: docker.DockerClient, busybox: str, containers: Callable[[str], str]
) -> None:
    out = client.containers.run(busybox, ["sh", "-c", "tty; echo hi"], tty=True, remove=True)
    assert re.fullmatch(rb"/dev/pts/\d+\r\nhi\r\n", out), out
    container = client.containers.run(
        busybox, ["sleep", "1000"], name=containers("resize"), tty=True, detach=True
    )
    container.resize(height=41, width=132)
    code, size = container.exec_run(["stty", "-F", "/dev/pts/0", "size"])
    assert (code, size) == (0, b"41 132\n")
    container.remove(force=True)


def test_resize_refusals(daemon: Daemon, busybox: str, containers: Callable[[str], str]) -> None:
    name = containers("noresize")
    reply = daemon.request(
        "POST", f"/containers/create?name={name}", {"Image": busybox, "Cmd": ["true"], "Tty": True}
    )
    assert reply.status == 201, reply.body
    reply = daemon.request("POST", f"/containers/{name}/resize?h=10&w=10")
    assert reply.status == 409 and "is not running" in reply.message
    assert daemon.request("POST", f"/containers/{name}/resize?h=x&w=10").status == 400
    assert daemon.request("POST", f"/containers/{name}/resize?w=10").status == 400
    assert daemon.request("POST", "/containers/absent/resize?h=1&w=1").status == 404
    assert daemon.request("POST", "/exec/absent/resize?h=1&w=1").status == 404


def test_cnm_run_interactive_and_tty(daemon: Daemon, busybox: str) -> None:
    done = daemon.cnm("run", "-i", "--rm", busybox, "sh", "-c", "read x; echo got $x", stdin="a\n")
    assert (done.returncode, done.stdout) == (0, "got a\n"), done.stderr
    done = daemon.cnm("run", "-t", "--rm", busybox, "sh", "-c", "tty; exit 2")
    assert done.returncode == 2, done.stderr
    assert re.fullmatch(r"/dev/pts/\d+\n", done.stdout), done.stdout  # text mode: \r\n -> \n


def test_terminal_and_stdin_across_a_daemon_restart(tmp_path: Path) -> None:
    """Live restore: the terminal container keeps running, logging and taking input; the
    stdin pipe's process reads EOF (its write end died with the daemon) and runs on."""
    with running_daemon(tmp_path) as daemon:
        client = docker.DockerClient(base_url=daemon.host)
        try:
            reply = daemon.request(
                "POST", "/images/create?fromSrc=-&repo=busybox&tag=local", BUSYBOX_TAR.read_bytes()
            )
            assert reply.status == 200, reply.body
            shell = client.containers.run(
                "busybox:local", ["sh"], tty=True, stdin_open=True, detach=True,
                network_mode="none",
            )  # fmt: skip
            piped = client.containers.run(
                "busybox:local", ["sh", "-c", "cat; echo eof; sleep 1000"], stdin_open=True,
                detach=True, network_mode="none",
            )  # fmt: skip
            _type(daemon, shell.id, b"echo before $((1 + 1))\n", b"before 2")
            assert daemon.stop() == 0
            daemon.start()

            shell.reload()
            assert shell.status == "running"
            shell.resize(height=27, width=99)
            _type(daemon, shell.id, b"echo after; stty size\n", b"27 99")
            assert b"before 2\r\n" in shell.logs() and b"after\r\n27 99\r\n" in shell.logs()
            piped.reload()
            assert piped.status == "running" and piped.logs() == b"eof\n"
            shell.kill()
            assert shell.wait(timeout=10)["StatusCode"] == 137
            piped.remove(force=True)
            shell.remove()
        finally:
            client.close()


def _type(daemon: Daemon, container: str, text: bytes, expected: bytes) -> None:
    """Send ``text`` through an attach and wait for ``expected`` in its (raw) output."""
    sock = _attach(daemon, container)
    try:
        sock.sendall(text)
        seen = b""
        deadline = time.monotonic() + EXPECT_TIMEOUT_S
        while expected not in seen:
            assert time.monotonic() < deadline, f"{expected!r} never came: {seen!r}"
            seen += sock.recv(4096)
    finally:
        sock.close()
