"""The runtime as a library: :func:`open_pipeline` and :class:`Authenticator`.

::

    with Authenticator(RuntimeOptions(db="users.db")) as auth:
        auth.enroll("alice", ["alice1.jpg", "alice2.jpg"])
        result = auth.authenticate("alice", "frames/")     # or start_session() + feed(frame, t) per frame
        result.decision                                    # Decision.ACCEPT / Decision.REJECT, result.reasons

Every result is one of the runtime's typed results (:class:`EnrollmentResult`,
:class:`SessionResult`, :class:`VerifyResult`, each with ``to_dict()``: the
JSON of the matching ``facelive`` command). The ``facelive`` CLI, the demo and
the benchmarks build their pipelines here; apps (the CLI, the demo) reach the
template database only through :class:`Authenticator`. Its errors are typed:
UnknownUserError / ModelMismatchError (no template to compare with),
EnrollmentError, NoUsableFaceError, and from loading ManifestError (with
BundleNotFoundError and FileChoiceError), BackendError, DetectorNotFoundError.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np

from .authenticate import FrameCallback, feed_frame, open_session, run_session
from .bundle import open_bundle
from .challenge import with_neutral_steps
from .constants import DEFAULT_FPS, INT8_VARIANTS
from .enrollment import EnrollmentResult, enroll_frames, enroll_paths
from .errors import FaceLiveError
from .face_pipeline import FacePipeline, FrameAnalysis, PipelineConfig
from .imageio import read_image
from .manifest import Manifest
from .options import RuntimeOptions, bundle_or
from .reasons import Decision
from .session import AuthSession, SessionConfig, SessionResult
from .sources import Frame, FrameSource, open_source
from .step_plan import StepPlan, Target
from .store import ModelMismatchError, TemplateStore, UnknownUserError, UserInfo, validate_user_id

__all__ = ["Authenticator", "LiveSession", "ModelMismatchError", "NoUsableFaceError", "UnknownUserError", "UserInfo",
           "delete_user", "enrolled_users", "open_pipeline", "validate_user_id"]
from .verification import VerifyResult

log = logging.getLogger(__name__)

ImageLike = Union[str, Path, np.ndarray, Frame]  # a file, an image array (BGR, grey or BGRA, any depth), a Frame


class NoUsableFaceError(FaceLiveError):
    """An image given to :meth:`Authenticator.verify` holds no usable face."""


def open_pipeline(options: RuntimeOptions = RuntimeOptions()) -> FacePipeline:
    """The per-frame pipeline (detector, tracker, verified model) the options describe.

    The manifest (and its signature, with a public key) and the model file's sha256 are checked before
    anything runs; ManifestError / BackendError / DetectorNotFoundError name what is wrong."""
    import cv2

    from .face_model import FaceModel

    cv2.setNumThreads(options.threads)  # the detector runs in OpenCV's pool: keep it to the same core budget
    variant = None if options.variant is None else INT8_VARIANTS[options.variant]
    bundle = open_bundle(options.bundle, options.public_key)  # resolve, verify
    model = FaceModel(bundle, options.format, "int8" if variant is not None and options.precision is None  # select, open
                      else options.precision, options.threads, variant=variant, rerank=options.rerank)
    detector = bundle.detector(options.detector)
    cfg = PipelineConfig(detect_every=options.detect_every, max_image_pixels=options.max_pixels)
    return FacePipeline(model, cfg=cfg, detector_path=str(detector))


def enrolled_users(db: str | Path) -> list[UserInfo]:
    """The users enrolled in the template database ``db``, every model's (empty when there is no database
    yet); no model is needed."""
    if not Path(db).is_file():
        return []
    with TemplateStore(db, create=False) as store:
        return store.users()


def delete_user(db: str | Path, user: str) -> int:
    """Delete ``user``'s templates and attempt history from ``db``; returns how many templates went."""
    with TemplateStore(db, create=False) as store:
        return store.delete(user)


class LiveSession:
    """One authentication attempt, fed one camera frame at a time (:meth:`Authenticator.start_session`).

    The attempt is recorded in the database (for the lock-out) once it is decided or finished."""

    def __init__(self, pipeline: FacePipeline, db: Path, user: str, session: AuthSession, now: float) -> None:
        self._pipeline, self._db, self.user, self._session, self._now = pipeline, db, user, session, now
        self._frames = 0
        self._recorded = session.status != Decision.PENDING  # a locked-out user: nothing to record
        self.last_analysis: FrameAnalysis | None = None
        pipeline.reset()

    @property
    def challenge(self) -> tuple[str, ...]:
        """The drawn expressions; the steps are neutral before each."""
        return self._session.challenge

    @property
    def status(self) -> Decision:
        return Decision(self._session.status)

    @property
    def target(self) -> Target | None:
        """Where the face should be now: an oval (centre and radii as fractions of the frame's width and
        height), None with positions off or once decided."""
        return self._session.target

    @property
    def prompt_s(self) -> float | None:
        """When the current step's prompt was shown (the frame time that started it)."""
        return self._session.prompt_s

    @property
    def expected(self) -> str | None:
        """The expression the person should show now (None once decided)."""
        return self._session.current_expected

    def feed(self, frame: np.ndarray, t: float) -> Decision:
        """Judge one frame taken at ``t`` seconds (from any start); returns the session's status."""
        if self.status == Decision.PENDING:
            self.last_analysis = feed_frame(self._pipeline, self._session, Frame(self._frames, t, frame,
                                                                                 f"frame {self._frames}"))
            self._frames += 1
            if self.status != Decision.PENDING:
                self._record()
        return self.status

    def finish(self, t: float | None = None) -> SessionResult:
        """End the attempt (rejects it with SOURCE_ENDED while still pending) and return the result."""
        result = self._session.finish(t)
        self._record()
        return result

    @property
    def result(self) -> SessionResult:
        """The result so far (a pending session reads as a reject)."""
        return self._session.result()

    def _record(self) -> None:
        """Record the decided attempt for the lock-out (the one place an attempt is recorded)."""
        if self._recorded:
            return
        self._recorded = True
        result = self._session.result()
        with TemplateStore(self._db, create=False) as store:
            store.record_attempt(self.user, result.decision == Decision.ACCEPT, result.reasons, self._now)
        log.info("auth %r: %s %s", self.user, result.decision, ",".join(result.reasons))


class Authenticator:
    """Enrollment, challenge-response authentication and face verification on one verified model.

    ``with Authenticator(options) as auth: ...`` (or :meth:`create_from_options`). Templates live in
    ``options.db``; a template made by another model is refused, never compared. ``pipeline``: one already
    opened for the same model options (an app that changes only the session or database settings keeps its
    model)."""

    def __init__(self, options: RuntimeOptions = RuntimeOptions(), pipeline: FacePipeline | None = None) -> None:
        self.options = options
        self.pipeline: FacePipeline = pipeline if pipeline is not None else open_pipeline(options)
        self._live: LiveSession | None = None

    @classmethod
    def create_from_options(cls, options: RuntimeOptions) -> Authenticator:
        return cls(options)

    def __enter__(self) -> Authenticator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End a session still running (it is recorded as failed) and let the model go."""
        if self._live is not None and self._live.status == Decision.PENDING:
            self._live.finish()
        self._live = None

    @property
    def manifest(self) -> Manifest:
        return self.pipeline.model.manifest

    @property
    def db(self) -> Path:
        return Path(self.options.db)

    @cached_property
    def session_config(self) -> SessionConfig:
        """The session thresholds (the options', else the bundle's) and timings, resolved once; OptionsError
        on a bad one."""
        return self.options.session.session_config(self.manifest)

    def draw_challenge(self) -> tuple[str, ...]:
        """A challenge for one session, as the options say (drawn, seeded, or in the given order)."""
        return self.options.session.draw_challenge()

    # ------------------------------------------------------------ users

    def users(self) -> list[UserInfo]:
        """The enrolled users, every model's (:func:`enrolled_users`)."""
        return enrolled_users(self.db)

    def delete_user(self, user: str) -> int:
        """Delete ``user``'s templates and attempt history (:func:`delete_user`)."""
        return delete_user(self.db, user)

    def matches_model(self, info: UserInfo) -> bool:
        """Was ``info``'s template made by this model (only such templates are compared)?"""
        return info.model_fingerprint == self.pipeline.model.fingerprint

    # ------------------------------------------------------------ enroll

    def enroll(self, user: str, images: Sequence[ImageLike], min_images: int = 1) -> EnrollmentResult:
        """Enroll ``user`` from image files, folders of images, image arrays or captured :class:`Frame` s
        (quality-gated); the template replaces the user's previous one for this model. EnrollmentError when
        fewer than ``min_images`` pass."""
        with TemplateStore(self.db) as store:
            if all(isinstance(i, (str, Path)) for i in images):
                return enroll_paths(self.pipeline, store, user, list(images), min_images)
            frames = [i if isinstance(i, Frame) else
                      Frame(n, float(n), read_image(i) if isinstance(i, (str, Path)) else i, f"image {n}")
                      for n, i in enumerate(images)]
            return enroll_frames(self.pipeline, store, user, frames, min_images)

    # ------------------------------------------------------------ authenticate

    def start_session(self, user: str, challenge: Sequence[str] | None = None,
                      now: float | None = None, plan: StepPlan | None = None) -> LiveSession:
        """Start authenticating ``user`` with a drawn challenge (or ``challenge``) and drawn targets and rests
        (or ``plan``: e.g. a served session's, replayed offline); feed it frames with :meth:`feed` (or the
        returned session's ``feed``). UnknownUserError (also when there is no database yet) /
        ModelMismatchError when the user has no template for this model."""
        self.close()
        settings = self.options.session
        now = time.time() if now is None else now
        drawn = tuple(challenge) if challenge is not None else self.draw_challenge()
        plan = plan if plan is not None else settings.draw_plan(with_neutral_steps(drawn))
        if not self.db.is_file():
            raise UnknownUserError(f"no template database at {self.db}: enroll {user!r} first")
        with TemplateStore(self.db, create=False) as store:
            session = open_session(self.pipeline, store, user, drawn, self.session_config, settings.lockout(), now,
                                   plan)
        self._live = LiveSession(self.pipeline, self.db, user, session, now)
        return self._live

    def feed(self, frame: np.ndarray, t: float) -> Decision:
        """Feed a frame to the session :meth:`start_session` started; returns its status."""
        if self._live is None:
            raise FaceLiveError("no session: call start_session(user) first")
        return self._live.feed(frame, t)

    def authenticate(self, user: str, source: FrameSource | Iterable[Frame] | str | Path | Sequence[str],
                     challenge: Sequence[str] | None = None, fps: float = DEFAULT_FPS,
                     on_frame: FrameCallback | None = None, now: float | None = None) -> SessionResult:
        """One whole session on ``source``: a camera index, a video file, a folder of frames (name order, at
        ``fps``), frame files, or an iterable of :class:`Frame`; ``on_frame(frame, analysis, session)`` after
        each frame. The decided attempt is recorded (lock-out); one that raises (e.g. an app cancelling it
        mid-way) is not."""
        opened = open_source([str(s) for s in source] if isinstance(source, (list, tuple)) else str(source),
                             fps=fps) if isinstance(source, (str, Path, list, tuple)) else None
        try:
            live = self.start_session(user, challenge, now)
            if live.status != Decision.PENDING:  # locked out: decided without a frame
                return live.result
            try:
                run_session(self.pipeline, live._session, opened if opened is not None else source, on_frame)
            except BaseException:
                self._live = None  # not decided: nothing to record
                raise
            return live.finish()
        finally:
            if opened is not None:
                opened.close()

    # ------------------------------------------------------------ verify

    def embed(self, image: ImageLike) -> np.ndarray:
        """The embedding of the face nearest the image's centre (no quality gates, as for a photo)."""
        array = read_image(image) if isinstance(image, (str, Path)) else image
        try:
            checked = self.pipeline.check_frame(array)
        except ValueError as exc:
            raise NoUsableFaceError(f"{image if isinstance(image, (str, Path)) else 'image'}: {exc}") from exc
        analysis = self.pipeline.analyze_still(checked)
        if not analysis.analysed:
            raise NoUsableFaceError(f"no face found in {image if isinstance(image, (str, Path)) else 'the image'}")
        return np.asarray(analysis.embedding)

    def verify(self, img1: ImageLike, img2: ImageLike, threshold: float | None = None) -> VerifyResult:
        """Are the two faces the same person? Cosine of the embeddings against ``threshold`` (default: the
        settings' verification threshold, else the bundle's)."""
        if threshold is None:
            threshold = bundle_or(self.options.session.threshold, self.manifest, "verification_cosine")
        return VerifyResult(float(np.dot(self.embed(img1), self.embed(img2))), float(threshold))
