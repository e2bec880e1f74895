"""The package's exceptions; each subclasses the built-in it refines."""

from __future__ import annotations

from dataclasses import dataclass


class DispatchError(Exception):
    """Base class of every error raised on purpose by dispatch."""


class InvalidProblemError(DispatchError, ValueError):
    """A value of the domain model breaks one of its rules."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad value in an input file: where it is and which rule it breaks.

    ``row`` counts lines as a spreadsheet shows them: the header is row 1, so
    the first record is row 2 (for GeoJSON, the first feature is row 1).
    """

    file: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}, column '{self.column}': {self.reason}"


class InputError(DispatchError, ValueError):
    """An input file has bad rows; ``errors`` lists every one of them."""

    def __init__(self, errors: list[RowError]):
        self.errors = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} invalid value(s):\n{lines}")


class NetworkError(DispatchError, ValueError):
    """A road network cannot be loaded or is unusable for routing."""
