"""What the daemon holds of each container's stdio: its input queue and its terminal.

Output. The container's stdout and stderr are its output FIFOs (``outputs``), handed to the
process (runc passes its own stdio to the container when there is no terminal). With ``Tty``
the process gets a terminal instead, one stream, copied to the stdout FIFO by a ``cat`` that
outlives the daemon (``console.Terminal``). With ``OpenStdin`` attached clients' input is
queued (``console.Stdin``) and written to the terminal or to a pipe on the process's stdin;
``StdinOnce`` is the API's business (it closes the stdin when its first attached client leaves).
Each run has an input queue of its own: a new one is made at create and after every exit, so
input sent while a container is stopped goes to its next run.

Daemon restarts (live restore). A terminal survives one: its copier holds it open and keeps
logging, and the new daemon takes the master back from the copier, so attach input and resize
work again. A stdin pipe does not: its write end dies with the daemon, so the process reads
EOF (a ``docker run -di ... sh`` then ends, as after its last input), and input attached later
is dropped until the next start. Output written by a terminal container between its exit and
the new daemon noticing it may be cut short in the log.
"""

from __future__ import annotations

import logging
import threading

from cnm.runtime import console
from cnm.runtime.files import ContainerFiles
from cnm.runtime.model import Container

log = logging.getLogger(__name__)


class StdioTable:
    def __init__(self, files: ContainerFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._terminals: dict[str, console.Terminal] = {}  # running container with a Tty
        self._stdins: dict[str, console.Stdin] = {}  # OpenStdin container -> this run's input

    def new_run(self, container: Container) -> None:
        """The input queue of the container's next run (OpenStdin only)."""
        if container.config.open_stdin:
            with self._lock:
                self._stdins[container.id] = console.Stdin()

    def keep(self, container: Container, stdio: console.ProcessStdio) -> None:
        """Hold what a start left of the process's stdio: the terminal (its copier starts) or
        the stdin pipe, which the input queue now feeds."""
        if stdio.master >= 0:
            bundle_dir = self._files.bundle_dir(container.id)
            bundle_dir.mkdir(parents=True, exist_ok=True)  # a host container has no bundle
            try:
                terminal = console.Terminal.start(stdio.master, stdio.output[1], bundle_dir)
            except OSError:
                log.exception("cannot log the terminal of %s", container.id[:12])
                stdio.close()  # hangs the terminal up
                return
            stdio.master = -1
            self._keep_terminal(container, terminal)
        with self._lock:
            stdin = self._stdins.get(container.id)
        if stdin is not None and stdio.stdin >= 0:
            stdin.feed(stdio.stdin, f"cnm-stdin-{container.id[:12]}")
            stdio.stdin = -1
        stdio.close()

    def recover_terminal(self, container: Container) -> None:
        """After a daemon restart: take the terminal back from the copier that kept it."""
        terminal = console.Terminal.recover(self._files.bundle_dir(container.id))
        if terminal is None:
            log.warning("container %s lost its terminal: no input or resize", container.id[:12])
            return
        self.new_run(container)
        self._keep_terminal(container, terminal)

    def _keep_terminal(self, container: Container, terminal: console.Terminal) -> None:
        with self._lock:
            self._terminals[container.id] = terminal
            stdin = self._stdins.get(container.id)
        if stdin is not None:
            stdin.feed(terminal.input_fd(), f"cnm-stdin-{container.id[:12]}")

    def write(self, container_id: str, data: bytes) -> None:
        with self._lock:
            stdin = self._stdins.get(container_id)
        if stdin is not None:
            stdin.write(data)

    def close_input(self, container_id: str) -> None:
        with self._lock:
            stdin = self._stdins.get(container_id)
        if stdin is not None:
            stdin.close()

    def resize(self, container_id: str, height: int, width: int) -> None:
        with self._lock:
            terminal = self._terminals.get(container_id)
        if terminal is not None:
            terminal.resize(height, width)

    def end_run(self, container_id: str) -> console.Terminal | None:
        """The run's process is ending: its input stops, and its terminal is handed back, to
        be ``finish``ed once the process is gone (its last output is logged then)."""
        with self._lock:
            terminal = self._terminals.pop(container_id, None)
            stdin = self._stdins.pop(container_id, None)
        if stdin is not None:
            stdin.stop()
        return terminal

    def forget(self, container_id: str) -> None:
        """The container was removed."""
        with self._lock:
            self._stdins.pop(container_id, None)

    def close(self) -> None:
        """The daemon is leaving: terminals stay open and logged by their copiers."""
        with self._lock:
            terminals, self._terminals = self._terminals, {}
            stdins = list(self._stdins.values())
        for terminal in terminals.values():
            terminal.detach()
        for stdin in stdins:
            stdin.stop()
