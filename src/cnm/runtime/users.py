"""``--user`` and ``--group-add``: names and numbers resolved with the container's own
/etc/passwd and /etc/group, as Docker (libcontainer's user.GetExecUser) resolves them.

``name``, ``uid``, ``name:group``, ``uid:gid`` (and the mixed forms): a name must be in the
container's file; a number need not be (its group is then 0 and its home ``/``). Without an
explicit group, the user gets its passwd group and, as supplementary groups, every group of
/etc/group that lists it; ``--group-add`` adds groups by name or number. The files are read
inside the container's root (``rootpath``): their symlinks cannot lead to the host's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnm.errors import InvalidParameter
from cnm.runtime import rootpath

MAX_ID = (1 << 31) - 1


@dataclass(frozen=True)
class Identity:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


def _entries(root: Path, path: str) -> list[list[str]]:
    text = rootpath.read_text(root, path) or ""
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value > MAX_ID:
            raise InvalidParameter(f"invalid user or group id {text}: too large")
        return value
    return None


def resolve(root: Path, user: str, group_add: list[str]) -> Identity:
    """The identity of ``user`` (Docker's ``Config.User``) in the container at ``root``."""
    name_part, _, group_part = user.partition(":")
    passwd = [e for e in _entries(root, "/etc/passwd") if len(e) >= 6]
    groups = [e for e in _entries(root, "/etc/group") if len(e) >= 3]
    wanted = name_part or "0"
    number = _number(wanted)
    entry = next(
        (e for e in passwd if (e[0] == wanted if number is None else e[2] == wanted)), None
    )
    if entry is None and number is None:
        raise InvalidParameter(f"unable to find user {wanted}: no matching entries in passwd file")
    if entry is not None:
        uid, gid = int(entry[2]), int(entry[3]) if entry[3].isdigit() else 0
        name, home = entry[0], entry[5] or "/"
    else:
        assert number is not None
        uid, gid, name, home = number, 0, "", "/"
    additional: list[int] = []
    if group_part:
        gid = _group_id(groups, group_part)
    elif name:
        for group in groups:
            members = group[3].split(",") if len(group) > 3 else []
            if name in members and group[2].isdigit():
                additional.append(int(group[2]))
    for extra in group_add:
        additional.append(_group_id(groups, extra))
    unique = list(dict.fromkeys(g for g in additional if g != gid))
    return Identity(uid, gid, unique, home, name)


def _group_id(groups: list[list[str]], text: str) -> int:
    number = _number(text)
    if number is not None:
        return number
    for group in groups:
        if group[0] == text and group[2].isdigit():
            return int(group[2])
    raise InvalidParameter(f"unable to find group {text}: no matching entries in group file")
