"""Frame sources for authentication and the demo: a camera, a video file, a folder of frames, a list of files.

Each yields :class:`Frame` objects with a timestamp in seconds: the camera's
clock, the video's frame times, or ``index / fps`` for still frames. A frame
that cannot be read is yielded with ``error`` set (never raised) so the caller
can give a reason code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from . import reasons
from .errors import FaceLiveError, ImageReadError, ImageTooLargeError
from .imageio import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class SourceError(FaceLiveError):
    """A frame source cannot be opened or holds no frames."""


@dataclass
class Frame:
    index: int
    t: float  # seconds since the first frame
    image: np.ndarray | None
    name: str
    error: str | None = None
    reason: str | None = None  # the reason code of ``error`` (UNREADABLE when not given)


class FrameSource:
    """Iterable of frames; ``describe`` says what it is."""

    kind = "frames"

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileListSource(FrameSource):
    """Still images played at ``fps`` in the given order."""

    kind = "files"

    def __init__(self, paths: Sequence[Path], fps: float) -> None:
        if fps <= 0:
            raise SourceError(f"--fps must be > 0, got {fps}")
        if not paths:
            raise SourceError("the source holds no frames")
        self.paths = list(paths)
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            try:
                yield Frame(i, i / self.fps, read_image(path), str(path))
            except ImageReadError as exc:
                code = reasons.IMAGE_TOO_LARGE if isinstance(exc, ImageTooLargeError) else reasons.UNREADABLE
                yield Frame(i, i / self.fps, None, str(path), error=str(exc), reason=code)

    def describe(self) -> str:
        return f"{len(self.paths)} frame file(s) at {self.fps:g} fps"


class VideoSource(FrameSource):
    """A video file (or a camera when ``camera`` is set) read with OpenCV."""

    def __init__(self, target: str | int, fps: float | None = None, camera: bool = False,
                 max_frames: int | None = None) -> None:
        self.target, self.camera, self.max_frames = target, camera, max_frames
        self.kind = "camera" if camera else "video"
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            if camera:
                raise SourceError(f"cannot open camera {target}: no camera there (or no permission); "
                                  "pass a video file or a folder of frames with --source instead")
            raise SourceError(f"cannot open video {target}: not a video OpenCV can read")
        file_fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps or (file_fps if 1.0 <= file_fps <= 240.0 else 30.0)

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        i = 0
        while self.max_frames is None or i < self.max_frames:
            ok, image = self._cap.read()
            if not ok or image is None:
                if i == 0:
                    raise SourceError(f"{self.describe()} gave no frames")
                return
            t = time.monotonic() - start if self.camera else i / self.fps
            yield Frame(i, t, image, f"frame{i:06d}")
            i += 1

    def describe(self) -> str:
        return f"camera {self.target}" if self.camera else f"video {self.target} at {self.fps:g} fps"

    def close(self) -> None:
        self._cap.release()


def images_in(folder: Path) -> list[Path]:
    """The image files of a folder, in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def expand_image_paths(items: Sequence[str | Path]) -> list[Path]:
    """Files stay as given (a missing one is reported when read); a folder becomes its images.

    SourceError for a folder without images or when nothing is left.
    """
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = images_in(path)
            if not found:
                raise SourceError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        else:
            out.append(path)
    if not out:
        raise SourceError("no images given")
    return out


def open_source(spec: Sequence[str] | str, fps: float = 10.0, max_frames: int | None = None) -> FrameSource:
    """A source from a command-line spec: CAMERA_INDEX, VIDEO, DIR (frames in name order) or FRAME files."""
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not items:
        raise SourceError("no --source given: pass a camera index, a video file, a folder of frames or frame files")
    if len(items) == 1:
        one = str(items[0])
        if one.isdigit():
            return VideoSource(int(one), camera=True, max_frames=max_frames)
        path = Path(one)
        if path.is_dir():
            frames = images_in(path)
            if not frames:
                raise SourceError(f"folder {path} holds no frames ({', '.join(IMAGE_SUFFIXES)})")
            return FileListSource(frames, fps)
        if not path.exists():
            raise SourceError(f"source {path} does not exist")
        if path.suffix.lower() in VIDEO_SUFFIXES or path.suffix.lower() not in IMAGE_SUFFIXES:
            return VideoSource(str(path), fps=None, max_frames=max_frames)
    paths = [Path(p) for p in items]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SourceError(f"frame file(s) not found: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    return FileListSource(paths, fps)
