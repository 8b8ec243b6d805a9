"""The one exception the evaluation protocols raise on purpose."""

from __future__ import annotations

from facelivenet.edge_runtime.errors import DatasetLayoutError


class ProtocolFileError(DatasetLayoutError):
    """A protocol file (pairs.txt, people.txt, a data folder) is missing or malformed.

    The message names the file, the line when there is one, and the layout that was expected.
    """
