"""What happened to containers and images, as the runtime reports it (``Runtime.events``).

The records name Docker's actions (``create``, ``start``, ``kill``, ``die``, ``stop``,
``restart``, ``rename``, ``destroy``, ``exec_create``..., and for images ``import``, ``tag``,
``untag``, ``delete``) and carry what the action adds (an exit code, a signal, the old name);
the API turns them into ``docker events`` messages. They are emitted after the change is
recorded, in the thread that made it, like the controller's own events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cnm.runtime.model import Container


@dataclass(frozen=True)
class ContainerEvent:
    action: str
    container: Container  # a copy, as it is after the change
    attributes: Mapping[str, str] = field(default_factory=dict)  # exitCode, signal, oldName...


@dataclass(frozen=True)
class ImageEvent:
    action: str
    image_id: str  # "sha256:..."
    name: str  # the tag the action is about; the id where Docker names the image by it


RuntimeEvent = ContainerEvent | ImageEvent
