"""The constants programs written for the original Cloudburst import from its generated
``cloudburst_pb2``: consistency modes and error codes. (No message classes: this client
speaks its own protocol, docs/protocol.md.)

The consistency modes are this client's (``NORMAL`` is last-writer-wins; ``SINGLE`` and
``MULTI``, the original's single- and multi-key causal modes, are both this client's
``CAUSAL``, which keeps what each promised). The error codes keep the original numbers;
this client raises its errors (:mod:`cloudburst.errors`) rather than return them, so a
program only ever sees ``NO_CLOUDBURST_ERROR``, as the ``error`` of a ``(success, error)``
pair that succeeded.
"""

from __future__ import annotations

from .. import CAUSAL, NORMAL, NO_ERROR

SINGLE = CAUSAL
MULTI = CAUSAL


class EnumType:
    """The part of a protobuf enum type a program uses: ``Name(number)`` and
    ``Value(name)``, ``keys()``, ``values()``, ``items()``."""

    def __init__(self, name: str, values: dict[str, int]) -> None:
        self._name = name
        self._values = values
        self._names = {v: k for k, v in values.items()}

    def Name(self, number: int) -> str:  # noqa: N802 (protobuf's name)
        try:
            return self._names[number]
        except KeyError:
            raise ValueError(f"enum {self._name} has no value {number!r}") from None

    def Value(self, name: str) -> int:  # noqa: N802 (protobuf's name)
        try:
            return self._values[name]
        except KeyError:
            raise ValueError(f"enum {self._name} has no name {name!r}") from None

    def keys(self) -> list[str]:
        return list(self._values)

    def values(self) -> list[int]:
        return list(self._values.values())

    def items(self) -> list[tuple[str, int]]:
        return list(self._values.items())


NO_CLOUDBURST_ERROR = NO_ERROR
FUNC_NOT_FOUND = 1
NOT_PINNED = 2
EXECUTION_ERROR = 3
NO_SUCH_DAG = 4
NO_RESOURCES = 5
DAG_ALREADY_EXISTS = 6

#: The original's error enum (not :class:`cloudburst.CloudburstError`, the exception).
CloudburstError = EnumType(
    "CloudburstError",
    {
        "NO_CLOUDBURST_ERROR": NO_CLOUDBURST_ERROR,
        "FUNC_NOT_FOUND": FUNC_NOT_FOUND,
        "NOT_PINNED": NOT_PINNED,
        "EXECUTION_ERROR": EXECUTION_ERROR,
        "NO_SUCH_DAG": NO_SUCH_DAG,
        "NO_RESOURCES": NO_RESOURCES,
        "DAG_ALREADY_EXISTS": DAG_ALREADY_EXISTS,
    },
)

__all__ = [
    "CloudburstError",
    "DAG_ALREADY_EXISTS",
    "EXECUTION_ERROR",
    "FUNC_NOT_FOUND",
    "MULTI",
    "NORMAL",
    "NOT_PINNED",
    "NO_CLOUDBURST_ERROR",
    "NO_RESOURCES",
    "NO_SUCH_DAG",
    "SINGLE",
]
