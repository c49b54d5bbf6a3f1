"""The first process of a host-filesystem container (image ``cnm/host``): set up, then exec.

``python -I -m cnm.runtime.hostinit --netns KEY --hostname H --bind SRC:DST ... -- CMD...``

It enters the sandbox's network namespace (setns), unshares mount, UTS and IPC namespaces, makes
every mount private, bind-mounts the sandbox's hosts/resolv.conf/hostname over /etc, sets the
hostname and execs the command: the host's files with the container's network view, like runc
without a rootfs.

The new mount namespace starts as a copy of the daemon's, which holds the bind mounts of every
other sandbox's netns and every container's overlay. Copies would keep those namespaces and
overlays alive after the daemon removes them (the host's root mount is private here, so the
removal does not propagate), so they are unmounted first (--unmount-under, and every nsfs mount).

With a terminal on its stdin (``Tty``) it makes that its controlling terminal (it leads a session
of its own), as runc does for a container's process.

A failure before exec is written to --status-fd (close-on-exec: the starter reads EOF on
success) and exits 127, as a shell does for a command it cannot run.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import socket
import sys
import termios
from typing import NoReturn

from cnm.osl.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUTS,
    MS_BIND,
    MS_PRIVATE,
    MS_REC,
    mount,
    setdomainname,
    setns,
    umount,
    unshare,
)


def _unwanted_mounts(prefixes: list[str]) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[4]
            fstype = fields[fields.index("-") + 1]
            if fstype == "nsfs" or any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def setup(args: argparse.Namespace) -> None:
    if args.netns:
        fd = os.open(args.netns, os.O_RDONLY | os.O_CLOEXEC)
        setns(fd, CLONE_NEWNET)
        os.close(fd)
    unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC)
    mount("none", "/", flags=MS_REC | MS_PRIVATE)
    for point in _unwanted_mounts(args.unmount_under):
        umount(point, ignore=(errno.EINVAL, errno.ENOENT))  # already gone with a parent: fine
    for pair in args.bind:
        source, _, target = pair.partition(":")
        if os.path.exists(target):
            mount(source, target, flags=MS_BIND)
    if args.hostname:
        socket.sethostname(args.hostname)
    if args.domainname:
        setdomainname(args.domainname)
    os.chdir(args.cwd or "/")
    if os.isatty(0):
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="cnm-hostinit")
    parser.add_argument("--netns", default="")
    parser.add_argument("--hostname", default="")
    parser.add_argument("--domainname", default="")
    parser.add_argument("--bind", action="append", default=[], metavar="SRC:DST")
    parser.add_argument("--unmount-under", action="append", default=[], metavar="DIR")
    parser.add_argument("--cwd", default="/")
    parser.add_argument("--status-fd", type=int, default=-1)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    if args.status_fd >= 0:
        os.set_inheritable(args.status_fd, False)
    try:
        setup(args)
    except OSError as err:
        fail(args.status_fd, f"container init: {err}", 1)
    try:
        os.execvp(args.command[0], args.command)
    except OSError as err:
        reason = {
            errno.ENOENT: "executable file not found in $PATH",
            errno.EACCES: "permission denied",
        }.get(err.errno or 0, err.strerror)
        fail(
            args.status_fd,
            f'exec: "{args.command[0]}": {reason}',
            126 if err.errno == errno.EACCES else 127,
        )


def fail(status_fd: int, message: str, code: int) -> NoReturn:
    if status_fd >= 0:
        os.write(status_fd, message.encode())
    print(f"cnm-hostinit: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
