"""Exceptions with messages that name the problem and the fix."""


class FaceLiveError(Exception):
    """Base class for every error facelivenet raises on purpose."""


class DetectorNotFoundError(FaceLiveError):
    """The YuNet face detector file could not be found."""


class ImageReadError(FaceLiveError):
    """An image file is missing, unreadable or not a decodable image."""


class ImageTooLargeError(ImageReadError):
    """An image file has more pixels than the decoder's limit (a decompression bomb)."""


class FrameTooLargeError(ValueError):
    """An image array has more pixels than the pipeline's limit (``max_pixels``)."""


class ManifestError(FaceLiveError):
    """A bundle manifest is missing, malformed or fails validation."""


class BundleNotFoundError(ManifestError):
    """No bundle at the path given (not a folder, or no manifest in it); the message says to pass --bundle."""

    error_type = "ManifestError"  # what the command line's JSON names (``error_type``), as before the split


class FileChoiceError(ManifestError):
    """The bundle has no model file of the asked format, precision or variant; the message lists its files."""

    error_type = "ManifestError"


class DatasetLayoutError(FaceLiveError):
    """A data folder is empty or does not have the expected layout."""
