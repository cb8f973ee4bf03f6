"""The stores' exceptions, as one tree so that callers catch at the level they need.

::

    StoreError
    ├── InvalidKeyError (ValueError)          the key is empty, too long or has control characters
    ├── InvalidPayloadError (ValueError)      a payload, response or field cannot be stored
    │   ├── PayloadNotSerializableError       not JSON (names the path of the offending value)
    │   └── PayloadTooLargeError              over the size limit (names the size and the limit)
    ├── FingerprintMismatchError              same key, another payload (IETF 422, Stripe 400)
    ├── KeyInProgressError                    the key is being executed elsewhere (IETF 409)
    ├── StoredFailureError                    the key's first execution failed definitely; replayed
    ├── LeaseLostError                        our lease ran out and another owner took the key over
    ├── DeadLetterNotFoundError (LookupError) no entry with that id
    ├── DeadLetterTransitionError             the entry's status does not allow that step
    ├── ExecutorClosedError                   work submitted after shutdown began
    └── SchemaVersionError                    the database was written by a newer schema

Messages never quote payload contents (they may hold personal or card data), only paths, types and
sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.stores._model import ErrorInfo

__all__ = [
    "DeadLetterNotFoundError",
    "DeadLetterTransitionError",
    "ExecutorClosedError",
    "FingerprintMismatchError",
    "InvalidKeyError",
    "InvalidPayloadError",
    "KeyInProgressError",
    "LeaseLostError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "SchemaVersionError",
    "StoreError",
    "StoredFailureError",
]


class StoreError(Exception):
    """Base of every error raised by :mod:`harness.stores`."""


class InvalidKeyError(StoreError, ValueError):
    """An idempotency key that cannot be used; nothing was written."""


class InvalidPayloadError(StoreError, ValueError):
    """A value that cannot be stored; nothing was written."""


class PayloadNotSerializableError(InvalidPayloadError):
    """The value is not plain JSON; ``path`` says where the offending part is (``payload.items[2]``)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class PayloadTooLargeError(InvalidPayloadError):
    """The value's JSON encoding exceeds the configured limit."""

    def __init__(self, message: str, *, what: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.what = what
        self.size = size
        self.limit = limit


class FingerprintMismatchError(StoreError):
    """The key was first used with another payload: the caller must pick a new key."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was first used with a different payload; an idempotency key may"
            " only be reused with the same payload (use a new key for a different request)"
        )
        self.key = key


class KeyInProgressError(StoreError):
    """Another owner holds the key's lease: retry later (the IETF draft's 409)."""

    def __init__(self, key: str, *, lease_until: float | None, waited: float = 0.0) -> None:
        waited_text = f" after waiting {waited:.3g}s" if waited > 0 else ""
        super().__init__(
            f"idempotency key {key!r} is being executed by another caller{waited_text}; retry later"
            " (its lease runs out if that caller died)"
        )
        self.key = key
        self.lease_until = lease_until
        self.waited = waited


class StoredFailureError(StoreError):
    """The key's first execution failed definitely; the stored failure is replayed, not re-run."""

    def __init__(self, key: str, error: ErrorInfo) -> None:
        status = f", status {error.status}" if error.status is not None else ""
        super().__init__(
            f"idempotency key {key!r} already failed definitely ({error.error_class}{status}): "
            f"{error.message}; use a new key to try a corrected request"
        )
        self.key = key
        self.error = error


class LeaseLostError(StoreError):
    """The operation ran, but its lease had run out and another owner took the key over.

    The other owner may execute the operation too: this is the one way a lease can let an effect
    happen twice, so it is reported loudly rather than ignored. Choose a lease longer than the
    operation, or renew it.
    """

    def __init__(self, key: str, *, fence: int) -> None:
        super().__init__(
            f"the lease on idempotency key {key!r} (fence {fence}) ran out and another owner took the key"
            " over; the result was not stored. Use a lease longer than the operation or renew it"
        )
        self.key = key
        self.fence = fence


class DeadLetterNotFoundError(StoreError, LookupError):
    """No dead-letter entry has that id (it may have been purged)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no dead-letter entry with id {entry_id!r} (purged, or from another store?)")
        self.entry_id = entry_id


class DeadLetterTransitionError(StoreError):
    """The entry's current status does not allow the requested step."""

    def __init__(self, entry_id: str, *, current: str, target: str, allowed_from: tuple[str, ...]) -> None:
        super().__init__(
            f"dead-letter entry {entry_id!r} is {current!r}; it can become {target!r} only from"
            f" {', '.join(repr(s) for s in allowed_from)}"
        )
        self.entry_id = entry_id
        self.current = current
        self.target = target


class ExecutorClosedError(StoreError):
    """Work was submitted after shutdown began; park it in the dead-letter queue instead."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer schema than this code knows; upgrade the harness."""
