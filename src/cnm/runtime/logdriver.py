"""Container logs on disk: the log drivers cnm has, Docker's json-file format, rotation, and
reading the logs back with Docker's filters.

Drivers: ``json-file`` (Docker's default), ``local`` and ``none``. Both file drivers write the
same file, one JSON object a line as Docker's json-file writes it
(``{"log":"hi\\n","stream":"stdout","time":"2026-12-06T16:18:25.555123456Z"}``), so ``docker
logs`` reads either back the same way; they differ in their defaults, as Docker's do (``local``
rotates at 20 MiB, keeps 5 files and compresses the rotated ones; ``json-file`` grows without
limit unless told). Docker's ``local`` writes protobuf records instead: only the file differs,
not what a client sees. ``none`` keeps nothing, and reading its logs is refused as Docker
refuses it (501). Every other driver is refused at create with Docker's message, and so is an
option a driver does not have (``tag`` too, which Docker's json-file accepts and never uses).

Each line's bytes are kept exactly: the ``log`` string is the bytes decoded with
``surrogateescape``, so output that is not UTF-8 comes back as it was written (Docker replaces
such bytes with U+FFFD).

Rotation (``max-size``, ``max-file``): before an entry would take the current file past
``max-size``, it becomes ``<file>.1`` (``.1.gz`` with ``compress``), the older ones move up and
the oldest beyond ``max-file`` goes. A reader opens every file under the writer's lock, so a
rotation while it reads loses nothing (an open file stays readable after a rename).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from cnm.errors import CnmError, InvalidParameter
from cnm.runtime.model import LogConfig

DRIVERS = ("json-file", "local", "none")
STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
_STREAM_NUMBERS = {name: number for number, name in STREAM_NAMES.items()}
_OPTIONS = {
    "json-file": ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex"),
    "local": ("max-size", "max-file", "compress"),
    "none": (),
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class NotSupported(CnmError):
    """The container's log driver keeps no logs to read (Docker's 501)."""

    status = 501


@dataclass(frozen=True)
class LogMessage:
    """One line of output (or a piece of a line longer than the copier's buffer)."""

    stream: int  # STDOUT or STDERR
    data: bytes
    time_ns: int  # when the daemon read it, in nanoseconds since the epoch
    attrs: dict[str, str] = field(default_factory=dict)  # labels and env asked for by options


@dataclass(frozen=True)
class Rotation:
    max_size: int  # bytes; 0: the file grows without limit
    max_files: int
    compress: bool


def parse_size(text: str) -> int:
    """Docker's sizes (units.RAMInBytes): ``10m``, ``1.5g``, ``512k``, ``100`` (bytes)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidParameter(f"invalid size: {text!r}")
    return int(float(match[1]) * _UNITS[(match[2] or "").lower()])


def _parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise InvalidParameter(f"invalid value for log opt {name}: {text!r} is not a boolean")


def check_log_config(config: LogConfig) -> LogConfig:
    """The log config in normal form (the empty driver is json-file); Docker's refusals."""
    driver = config.type or "json-file"
    if driver not in DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    options = dict(config.config)
    mode = options.pop("mode", "blocking")
    if mode not in ("", "blocking"):
        raise InvalidParameter(
            f"log mode {mode!r} is not supported by cnm: output is always copied in blocking "
            "mode (the container waits while its pipe is full)"
        )
    if "max-buffer-size" in options:
        raise InvalidParameter(
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
        )
    if driver == "none":
        return LogConfig("none", dict(config.config))
    for name in options:
        if name not in _OPTIONS[driver]:
            where = "json-file log driver" if driver == "json-file" else "log driver local"
            raise InvalidParameter(f"unknown log opt '{name}' for {where}")
    rotation(LogConfig(driver, options))  # the values, checked now rather than at start
    for name in ("labels-regex", "env-regex"):
        if name in options:
            try:
                re.compile(options[name])
            except re.error as err:
                raise InvalidParameter(f"invalid log opt {name}: {err}") from None
    return LogConfig(driver, dict(config.config))


def rotation(config: LogConfig) -> Rotation:
    """What a file driver's options say about rotation (local's defaults: 20m, 5, compress)."""
    options = config.config
    local = config.type == "local"
    max_size = parse_size(options["max-size"]) if "max-size" in options else 0
    if local and "max-size" not in options:
        max_size = 20 << 20
    if "max-size" in options and max_size <= 0:
        raise InvalidParameter(f"invalid log opt max-size: {options['max-size']!r}")
    try:
        max_files = int(options.get("max-file", "5" if local else "1"))
    except ValueError:
        raise InvalidParameter(f"invalid log opt max-file: {options['max-file']!r}") from None
    if max_files < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    compress = _parse_bool("compress", options.get("compress", "true" if local else "false"))
    if compress and "compress" in options and (max_files < 2 or max_size == 0):
        raise InvalidParameter(
            "compress cannot be true when max-file is less than 2 or max-size is not set"
        )
    return Rotation(max_size, max_files, compress and max_files > 1 and max_size > 0)


def attributes(config: LogConfig, labels: dict[str, str], env: list[str]) -> dict[str, str]:
    """The ``attrs`` json-file's options add to every entry: the container's labels and
    environment variables they name (``docker logs --details`` shows them)."""
    options = config.config
    found: dict[str, str] = {}
    wanted_labels = {n for n in options.get("labels", "").split(",") if n}
    label_pattern = re.compile(options["labels-regex"]) if "labels-regex" in options else None
    for name, value in labels.items():
        if name in wanted_labels or (label_pattern and label_pattern.search(name)):
            found[name] = value
    variables = {n: v for n, _, v in (e.partition("=") for e in env)}
    wanted_env = {n for n in options.get("env", "").split(",") if n}
    env_pattern = re.compile(options["env-regex"]) if "env-regex" in options else None
    for name, value in variables.items():
        if name in wanted_env or (env_pattern and env_pattern.search(name)):
            found[name] = value
    return found


# ----------------------------------------------------------------------------- times


def format_time(time_ns: int) -> str:
    """RFC 3339 with nine fractional digits, UTC (Docker's RFC3339NanoFixed)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time as json-file writes it."""
    head, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")
    if not rest:
        head = head.rstrip("Z")
    moment = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(moment.timestamp()) * 1_000_000_000 + nanos


# ----------------------------------------------------------------------------- files


def _entry(message: LogMessage) -> bytes:
    entry: dict[str, object] = {
        "log": message.data.decode("utf-8", "surrogateescape"),
        "stream": STREAM_NAMES[message.stream],
    }
    if message.attrs:
        entry["attrs"] = message.attrs
    entry["time"] = format_time(message.time_ns)
    return json.dumps(entry, separators=(",", ":")).encode("utf-8", "surrogateescape") + b"\n"


def _message(line: bytes) -> LogMessage | None:
    try:
        entry = json.loads(line.decode("utf-8", "surrogateescape"))
        return LogMessage(
            stream=_STREAM_NUMBERS[entry["stream"]],
            data=str(entry["log"]).encode("utf-8", "surrogateescape"),
            time_ns=parse_time(entry["time"]),
            attrs=dict(entry.get("attrs") or {}),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a crash


class LogFile:
    """The log file of one container, appended to by the output copier."""

    def __init__(self, path: Path, rotation: Rotation) -> None:
        self.path = path
        self.rotation = rotation
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open while in use
        return self._file

    def write(self, messages: Iterable[LogMessage]) -> None:
        entries = [_entry(m) for m in messages]
        if not entries:
            return
        limit = self.rotation.max_size
        with self._lock:
            out = self._open()
            if not limit:
                out.write(b"".join(entries))
            for entry in entries if limit else ():
                if out.tell() > 0 and out.tell() + len(entry) > limit:
                    self._rotate()
                    out = self._open()
                out.write(entry)
            out.flush()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        keep = self.rotation.max_files
        suffix = ".gz" if self.rotation.compress else ""
        oldest = self.path.with_name(f"{self.path.name}.{keep - 1}{suffix}")
        oldest.unlink(missing_ok=True)
        for number in range(keep - 2, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}{suffix}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{number + 1}{suffix}"))
        if keep < 2:
            self.path.unlink(missing_ok=True)
            return
        first = self.path.with_name(f"{self.path.name}.1")
        if self.rotation.compress:
            with open(self.path, "rb") as source, gzip.open(f"{first}.gz", "wb") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
            self.path.unlink()
        else:
            self.path.rename(first)

    def snapshot(self) -> list[tuple[IO[bytes], int]]:
        """Every file of the log, oldest first, opened, with the size to read of each: what
        was written until now and nothing after."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
            return open_log_files(self.path)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def open_log_files(path: Path) -> list[tuple[IO[bytes], int]]:
    """The log at ``path`` and its rotated files, oldest first, opened, with their sizes."""
    rotated = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        number = candidate.name[len(path.name) + 1 :].removesuffix(".gz")
        if number.isdigit():
            rotated.append((int(number), candidate))
    found: list[tuple[IO[bytes], int]] = []
    for _, candidate in sorted(rotated, reverse=True):
        try:
            if candidate.name.endswith(".gz"):
                compressed = cast(IO[bytes], gzip.open(candidate, "rb"))  # noqa: SIM115
                found.append((compressed, -1))
            else:
                plain = open(candidate, "rb")  # noqa: SIM115 - the reader closes it
                found.append((plain, os.fstat(plain.fileno()).st_size))
        except FileNotFoundError:
            continue
    try:
        current = open(path, "rb")  # noqa: SIM115 - the reader closes it
    except FileNotFoundError:
        return found
    found.append((current, os.fstat(current.fileno()).st_size))
    return found


def read_messages(
    files: list[tuple[IO[bytes], int]],
    since_ns: int = 0,
    until_ns: int = 0,
    tail: int | None = None,
) -> list[LogMessage]:
    """The messages of a snapshot with Docker's filters: from ``since_ns`` to ``until_ns``
    (both included; 0: no bound), the last ``tail``; the files are closed."""
    kept: deque[LogMessage] | list[LogMessage] = deque(maxlen=tail) if tail is not None else []
    try:
        for stream, size in files:
            for message in _messages(stream, size):
                if since_ns and message.time_ns < since_ns:
                    continue
                if until_ns and message.time_ns > until_ns:
                    continue
                kept.append(message)
    finally:
        for stream, _ in files:
            stream.close()
    return list(kept)


def _messages(stream: IO[bytes], size: int) -> Iterator[LogMessage]:
    remaining = size
    for line in stream:
        if size >= 0:
            if remaining <= 0:
                return
            line = line[:remaining]
            remaining -= len(line)
        if not line.endswith(b"\n"):
            return  # being written: beyond the snapshot
        message = _message(line)
        if message is not None:
            yield message
