"""``python -m cnm.labrun PAYLOAD``: call a Python callable inside a lab sandbox.

The payload is a base64 pickle of ``(target, args, kwargs)``, made by ``cnm.lab``. Pickle
passes a function by reference (its module and qualified name), as multiprocessing's spawn
does, so the target must be importable from the sandbox's process: a module-level function of
an importable module (the lab passes its caller's ``sys.path`` as PYTHONPATH). What the
callable returns is ignored; an exception ends the process with status 1 and its traceback on
stderr.
"""

from __future__ import annotations

import base64
import pickle
import sys


def main() -> None:
    target, args, kwargs = pickle.loads(base64.b64decode(sys.argv[1]))
    target(*args, **kwargs)


if __name__ == "__main__":
    main()
