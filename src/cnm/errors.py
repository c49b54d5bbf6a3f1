"""Error classes shared by every layer.

Each class carries the HTTP status the Docker Engine API gives for that class of failure, so
the API layer maps any error to a response without knowing where it came from.
"""


class CnmError(Exception):
    """Base class; an unexpected failure (HTTP 500)."""

    status = 500


class InvalidParameter(CnmError):
    """The request is malformed or asks for something impossible (HTTP 400)."""

    status = 400


class Forbidden(CnmError):
    """The object exists but the operation is not allowed on it (HTTP 403)."""

    status = 403


class NotFound(CnmError):
    """No such object (HTTP 404)."""

    status = 404


class Conflict(CnmError):
    """The operation clashes with existing state: a duplicate name, an address in use (409)."""

    status = 409


class Unavailable(CnmError):
    """A resource is exhausted or a backend is unreachable (HTTP 503)."""

    status = 503


class NotSupported(CnmError):
    """A request cnm understands but cannot serve on this host or at all: a driver it has no
    implementation of, a kernel feature the host lacks (HTTP 501, errdefs.NotImplemented)."""

    status = 501
