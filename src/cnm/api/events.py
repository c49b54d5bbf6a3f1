"""``GET /events``: Docker's event stream, fed by the controller's and the runtime's events.

The ``EventLog`` turns both buses' records into Docker's messages as they happen (in the thread
that made the change), keeps the last HISTORY of them, as Docker keeps 256, and hands each new
one to the streams that follow. The shapes are dockerd 20.10's, field for field:

* containers (``status``/``id``/``from`` as well, for old clients): create, start, kill
  (``signal``), die (``exitCode``), stop, restart, rename (``oldName``), destroy,
  ``exec_create: CMD``, ``exec_start: CMD``, exec_die (``execID``, ``exitCode``); their
  attributes are the container's labels, ``image`` and ``name``;
* networks: create and destroy (``name``, ``type``: the driver), connect and disconnect (and
  ``container``), sent when an endpoint joins or leaves, so a container's start and stop
  connect and disconnect it, as in Docker;
* images: import, tag, untag, delete (``name``).

The query is Docker's: ``since`` and ``until`` are Unix times (``1700000000`` or
``1700000000.5``; the docker CLI turns durations and dates into those). With ``since`` (or
``until``) the stream starts with the kept messages from then on; with an ``until`` in the past
it is only those, else it ends at ``until``; without either it follows until the client leaves.
``filters`` are Docker's: ``type``, ``event``, ``container``, ``image``, ``network``, ``label``,
``scope``... (a key Docker does not know is refused, where dockerd 20.10 ignores it).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cnm.api.common import BACKEND, add_route
from cnm.api.filters import Filters, match_labels, parse_filters, validate_keys
from cnm.api.streams import client_gone
from cnm.errors import InvalidParameter
from cnm.events import Event
from cnm.runtime.events import ImageEvent, RuntimeEvent

if TYPE_CHECKING:
    from cnm.controller import Controller
    from cnm.runtime.runtime import Runtime

HISTORY = 256
POLL_INTERVAL_S = 1.0  # how often an idle stream looks whether its client is still there
TYPES = (
    "container",
    "image",
    "network",
    "volume",
    "daemon",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
)
FILTERS = frozenset({*TYPES, "event", "label", "scope", "type"})
NETWORK_ACTIONS = {
    "network-create": "create",
    "network-delete": "destroy",
    "endpoint-join": "connect",
    "endpoint-leave": "disconnect",
}
_TIMESTAMP = re.compile(r"(-?\d+)(?:\.(\d{1,9}))?")

Message = dict[str, Any]


def _message(type_: str, action: str, actor: str, attributes: dict[str, str]) -> Message:
    now = time.time_ns()
    return {
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor, "Attributes": dict(sorted(attributes.items()))},
        "scope": "local",
        "time": now // 1_000_000_000,
        "timeNano": now,
    }


def network_message(event: Event) -> Message | None:
    action = NETWORK_ACTIONS.get(event.kind)
    if action is None or event.network is None:
        return None
    attributes = {"name": event.network.name, "type": event.network.driver}
    if event.sandbox is not None:
        attributes["container"] = event.sandbox.container_id
    return _message("network", action, event.network.id, attributes)


def runtime_message(event: RuntimeEvent) -> Message:
    if isinstance(event, ImageEvent):
        legacy = {"status": event.action, "id": event.image_id}
        return legacy | _message("image", event.action, event.image_id, {"name": event.name})
    container = event.container
    attributes = {
        **container.config.labels,
        "image": container.config.image,
        "name": container.name,
        **event.attributes,
    }
    legacy = {"status": event.action, "id": container.id, "from": container.config.image}
    return legacy | _message("container", event.action, container.id, attributes)


class EventLog:
    """The kept messages and the streams that follow new ones (called from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: deque[Message] = deque(maxlen=HISTORY)
        self._followers: list[Callable[[Message | None], None]] = []

    def on_network_event(self, event: Event) -> None:
        message = network_message(event)
        if message is not None:
            self.publish(message)

    def on_runtime_event(self, event: RuntimeEvent) -> None:
        self.publish(runtime_message(event))

    def publish(self, message: Message) -> None:
        with self._lock:
            self._history.append(message)
            followers = list(self._followers)
        for follower in followers:
            follower(message)

    def follow(self, follower: Callable[[Message | None], None]) -> list[Message]:
        """The kept messages, and from now on every new one to ``follower`` (None at close),
        with nothing lost or repeated in between."""
        with self._lock:
            self._followers.append(follower)
            return list(self._history)

    def unfollow(self, follower: Callable[[Message | None], None]) -> None:
        with self._lock:
            if follower in self._followers:
                self._followers.remove(follower)

    def close(self) -> None:
        with self._lock:
            followers, self._followers = self._followers, []
        for follower in followers:
            follower(None)


EVENT_LOG = web.AppKey("event_log", EventLog)


# ----------------------------------------------------------------------------- the query


def parse_time(name: str, text: str) -> int | None:
    """``since``/``until`` in nanoseconds since the epoch (None: not given), as Docker's
    timetypes.ParseTimestamps reads them."""
    if not text:
        return None
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise InvalidParameter(
            f"invalid value for {name}: {text!r} is not a Unix time (seconds[.nanoseconds])"
        )
    fraction = (match[2] or "").ljust(9, "0")
    return int(match[1]) * 1_000_000_000 + int(fraction or 0)


def _prefix_match(values: list[str], *fields: str) -> bool:
    """Docker's FuzzyMatch: a value equal to, or a prefix of, one of the fields."""
    return any(field.startswith(value) for value in values for field in fields if field)


def _strip_tag(name: str) -> str:
    repository, _, tag = name.rpartition(":")
    return repository if repository and "/" not in tag else name


def matches(message: Message, filters: Filters) -> bool:
    """Docker's events filter (daemon/events/filter.go): every key given must match."""
    type_ = message["Type"]
    actor = message["Actor"]["ID"]
    attributes: dict[str, str] = message["Actor"]["Attributes"]
    name = attributes.get("name", "")
    action = message["Action"]
    if "type" in filters and type_ not in filters["type"]:
        return False
    if "scope" in filters and message["scope"] not in filters["scope"]:
        return False
    if "event" in filters:
        fuzzy = {"exec_create", "exec_start", "health_status"} & set(filters["event"])
        wanted = filters["event"]
        if action not in wanted and not (fuzzy and _prefix_match(wanted, action)):
            return False
    for kind in (t for t in TYPES if t != "image"):
        if kind in filters and not (type_ == kind and _prefix_match(filters[kind], actor, name)):
            return False
    if "image" in filters:
        image = name if type_ == "image" else attributes.get("image", "")
        candidates = {actor, image, _strip_tag(actor), _strip_tag(image)}
        if not candidates & set(filters["image"]):
            return False
    return "label" not in filters or match_labels(filters["label"], attributes)


def check_filters(filters: Filters) -> None:
    validate_keys(filters, FILTERS)
    for kind in filters.get("type", []):
        if kind not in TYPES:
            raise InvalidParameter(f"invalid filter 'type={kind}'")


# ----------------------------------------------------------------------------- the stream


async def events(request: web.Request) -> web.StreamResponse:
    since = parse_time("since", request.query.get("since", ""))
    until = parse_time("until", request.query.get("until", ""))
    if since is not None and until is not None and until < since:
        raise InvalidParameter(
            f"`since` time ({request.query['since']}) cannot be after `until` time "
            f"({request.query['until']})"
        )
    filters = parse_filters(request.query.get("filters"))
    check_filters(filters)
    log = request.app[EVENT_LOG]
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[Message | None] = asyncio.Queue()

    def follower(message: Message | None) -> None:
        loop.call_soon_threadsafe(received.put_nowait, message)

    kept = log.follow(follower)
    try:
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"")  # the headers leave now: the client knows it is following

        async def send(message: Message) -> bool:
            """Write a message that passes; False once ``until`` is behind it."""
            if until is not None and message["timeNano"] > until:
                return False
            if matches(message, filters):
                await response.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            return True

        if since is not None or until is not None:
            for message in kept:
                if since is None or message["timeNano"] >= since:
                    await send(message)
        if until is not None and until <= time.time_ns():
            return response
        while not client_gone(request):
            timeout = POLL_INTERVAL_S
            if until is not None:
                timeout = min(timeout, max(0.0, (until - time.time_ns()) / 1e9))
            try:
                arrived = await asyncio.wait_for(received.get(), timeout)
            except TimeoutError:
                if until is not None and time.time_ns() >= until:
                    break
                continue
            if arrived is None or not await send(arrived):
                break
    except ConnectionError:
        pass  # the client left
    finally:
        log.unfollow(follower)
    return response


def add_routes(app: web.Application) -> None:
    log = app[EVENT_LOG] = EventLog()
    backend_ = app[BACKEND]
    controller: Controller = backend_.controller
    controller.subscribe(log.on_network_event)
    runtime: Runtime | None = backend_.runtime
    if runtime is not None:
        runtime.events.subscribe(log.on_runtime_event)

    async def stop_following(_: web.Application) -> None:
        log.close()

    app.on_shutdown.append(stop_following)
    add_route(app, "GET", "/events", events)
