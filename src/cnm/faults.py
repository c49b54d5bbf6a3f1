"""A debug hook that kills the process at step k: how the fault-injection tests crash the daemon
in the middle of an operation, with SIGKILL's semantics (no cleanup, no flush, no atexit).

``CNM_CRASH_AT=k`` (a positive integer) in the daemon's environment makes it send itself SIGKILL
at the k-th step counted after ``arm()``, which the daemon calls once start-up is over (so k
counts the steps of the requests it serves, the same ones every run). Steps are counted where
state changes, on either side of each change:

* every undo step a transaction records (``cnm.transaction``): right after each completed step
  of a multi-step operation;
* before and after every store commit (``cnm.store``);
* every kernel object the OS layer makes or removes (``cnm.osl``: namespaces, links,
  addresses, routes), every ruleset change the firewall sends to the kernel, every host port
  the port mapper binds.

Before dying, the hook writes one line naming the step to stderr (the daemon's log), so a
harness can tell which step a crash hit; a daemon that stops without reaching step k logs how
many steps it counted.

Cost when unset: ``step`` returns after one global lookup and one comparison, 29 ns a call on
this machine (``python -m timeit -s "from cnm import faults" "faults.step('x')"``; a call of an
empty function takes 24 ns), so well under a microsecond for the tens of steps of an operation
that takes milliseconds; nothing else in the daemon changes. The environment is read once, at
import.
"""

from __future__ import annotations

import os
import signal
import threading

ENVIRONMENT = "CNM_CRASH_AT"


def _crash_at(text: str | None) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise SystemExit(f"{ENVIRONMENT}={text!r}: expected a positive integer")
    return int(text)


_CRASH_AT = _crash_at(os.environ.get(ENVIRONMENT))
_lock = threading.Lock()
_armed = False
_count = 0


def arm() -> None:
    """Start counting steps (the daemon calls it when it starts serving)."""
    global _armed
    _armed = True


def steps_counted() -> int | None:
    """The steps counted so far; None when no crash was asked for."""
    return None if _CRASH_AT is None else _count


def step(what: str) -> None:
    """One step of an operation; the process dies here if it is the k-th."""
    if _CRASH_AT is None:
        return
    _count_step(what)


def _count_step(what: str) -> None:
    global _count
    if not _armed:
        return
    with _lock:
        _count += 1
        if _count != _CRASH_AT:
            return
        os.write(2, f"cnm: crash injected at step {_count}: {what}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
