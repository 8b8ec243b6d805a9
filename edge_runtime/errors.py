"""Exceptions with messages that name the problem and the fix."""


class FaceLiveError(Exception):
    """Base class for every error facelivenet raises on purpose."""


class DetectorNotFoundError(FaceLiveError):
    """The YuNet face detector file could not be found."""


class ImageReadError(FaceLiveError):
    """An image file is missing, unreadable or not a decodable image."""


class ManifestError(FaceLiveError):
    """A bundle manifest is missing, malformed or fails validation."""


class DatasetLayoutError(FaceLiveError):
    """A data folder is empty or does not have the expected layout."""
