"""The demo's Kivy-free parts: settings, command line, words, preview drawing, the frame feed, capture."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from facelivenet.demo_kivy.enroll_flow import EnrollmentCapture
from facelivenet.demo_kivy.feed import Cancelled, FrameFeed
from facelivenet.demo_kivy.flow import Flow
from facelivenet.demo_kivy.guidance import guidance, instruction, move_hint, reason_lines
from facelivenet.demo_kivy.options import build_parser, parse_script, parse_size, screenshot_prefix, settings_from_args
from facelivenet.demo_kivy.preview import mirror_box, render_preview
from facelivenet.demo_kivy.settings import DemoSettings, SettingsError
from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.sources import Frame, SourceError
from facelivenet.edge_runtime.step_plan import Target

# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("change, words", [
    ({"threads": 0}, "threads must be >= 1"),
    ({"threshold": 1.5}, "verification threshold is a cosine"),
    ({"expression_threshold": 0.0}, "expression threshold is a probability"),
    ({"challenge": ("happy", "smirk")}, "unknown expression 'smirk'"),
    ({"challenge": ("neutral",)}, "neutral is not a challenge expression"),
    ({"format": "pt"}, "format must be one of"),
    ({"enroll_frames": 0}, "enroll frames must be >= 1"),
    ({"source": ()}, "a source is needed"),
])
def test_settings_name_the_bad_value(change, words):
    with pytest.raises(SettingsError, match=words):
        DemoSettings().replace(**change)


def test_thresholds_come_from_the_bundle_unless_overridden():
    manifest = SimpleNamespace(thresholds=SimpleNamespace(verification_cosine=0.96, expression_probability=0.5))
    cfg = DemoSettings().session.session_config(manifest)
    assert (cfg.verification_threshold, cfg.expression_threshold) == (0.96, 0.5)
    cfg = DemoSettings().replace(threshold=0.9, expression_threshold=0.3, hold_frames=2).session.session_config(manifest)
    assert (cfg.verification_threshold, cfg.expression_threshold, cfg.hold_frames) == (0.9, 0.3, 2)


def test_only_a_camera_preview_is_mirrored_by_default():
    s = DemoSettings()
    assert s.mirrors(("0",)) and not s.mirrors(("clip.mp4",)) and not s.mirrors(("a.png", "b.png"))
    assert DemoSettings(mirror=False).mirrors(("0",)) is False
    assert DemoSettings(mirror=True).mirrors(("clip.mp4",)) is True


# -------------------------------------------------------------- command line


def test_command_line_to_settings():
    args = build_parser().parse_args(["--source", "frames/", "--enroll-source", "e/", "--challenge", "surprise,happy",
                                      "--fixed-order", "--seed", "3", "--threshold", "0.9", "--format", "tflite",
                                      "--precision", "fp32", "--threads", "2", "--fps", "15", "--no-mirror"])
    s = settings_from_args(args, "users.db")
    assert s.source == ("frames/",) and s.enroll_source == ("e/",)
    assert s.session.challenge == ("surprise", "happy") and s.session.fixed_order and s.session.seed == 3
    assert (s.runtime.format, s.runtime.precision, s.runtime.threads, s.session.threshold, s.fps, s.mirror, s.db) == (
        "tflite", "fp32", 2, 0.9, 15.0, False, "users.db")
    assert settings_from_args(build_parser().parse_args([]), "x.db").source == ("0",)  # camera 0


def test_the_demo_takes_every_session_rule_and_reaches_templates_only_through_the_api():
    from pathlib import Path

    args = build_parser().parse_args(["--expression-margin", "1.5", "--identity-floor", "0.5", "--continuity", "0.8"])
    session = settings_from_args(args, "x.db").session
    assert (session.expression_margin, session.identity_floor, session.continuity) == (1.5, 0.5, 0.8)
    assert DemoSettings().replace(continuity=0.7, fps=10.0).value("continuity") == 0.7
    demo = Path(__file__).resolve().parents[2] / "demo_kivy"
    for path in demo.glob("*.py"):
        text = path.read_text()
        assert "SessionConfig(" not in text and "TemplateStore" not in text and "edge_runtime.store" not in text, path


def test_script_size_and_screenshot_prefix(tmp_path):
    assert parse_script("enroll, auth") == ["enroll", "auth"]
    with pytest.raises(SettingsError, match="unknown step 'login'"):
        parse_script("enroll,login")
    with pytest.raises(SettingsError, match="no steps given"):
        parse_script(" , ")
    assert parse_size("640x480") == (640, 480)
    for bad in ("640", "axb", "10x10"):
        with pytest.raises(SettingsError, match="--size"):
            parse_size(bad)
    assert screenshot_prefix(str(tmp_path / "run.png")) == tmp_path / "run"
    assert screenshot_prefix(str(tmp_path / "run")) == tmp_path / "run"
    assert screenshot_prefix(None) is None
    with pytest.raises(SettingsError, match="does not exist"):
        screenshot_prefix(str(tmp_path / "nope" / "run.png"))


# ---------------------------------------------------------------------- words


def test_guidance_and_instructions_in_plain_words():
    assert guidance([]) == ""
    assert guidance([reasons.NO_FACE]) == "No face found: look at the camera"
    assert guidance([reasons.MULTIPLE_FACES]).startswith("Only one face")
    assert guidance([reasons.FACE_TOO_SMALL, reasons.BLURRY]) == "Move closer: the face is too small"
    assert guidance([reasons.TOO_DARK]) == "More light: the face is too dark"
    assert instruction("happy") == "Smile!" and instruction("neutral") == "Neutral face" and instruction(None) == ""
    assert reason_lines([reasons.IDENTITY_MISMATCH]) == ["the face does not match the enrolled person"]


# -------------------------------------------------------------------- preview


def test_preview_is_rgb_and_mirrors_the_face_box_with_the_picture():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :50] = (255, 0, 0)  # blue (BGR) on the frame's left
    box = np.array([10, 20, 30, 40], np.float32)
    plain = render_preview(frame, box, good=True, mirror=False)
    assert tuple(plain[50, 5]) == (0, 0, 255)  # blue in RGB, still on the left
    mirrored = render_preview(frame, box, good=True, mirror=True)
    assert tuple(mirrored[50, 195]) == (0, 0, 255)  # the picture is mirrored...
    assert mirrored[20, 160:190].any() and not plain[20, 160:190].any()  # ...and the box went with it
    assert np.array_equal(mirror_box(box, 200), [160, 20, 30, 40])
    assert frame[:, 50:].sum() == 0  # the frame itself is untouched (the analysis sees it unmirrored)


def test_large_frames_are_shrunk_for_the_screen():
    assert render_preview(np.zeros((1080, 1920, 3), np.uint8)).shape == (540, 960, 3)
    assert render_preview(np.zeros((50, 60), np.uint8)).shape == (50, 60, 3)


# ----------------------------------------------------------------------- feed


def frames(n: int, fps: float = 100.0, fail_at: int | None = None):
    def opener():
        for i in range(n):
            if i == fail_at:
                raise SourceError("camera unplugged")
            yield Frame(i, i / fps, np.full((4, 4, 3), i, np.uint8), f"f{i}")
    return opener


def test_lossless_feed_gives_every_frame_to_a_slow_consumer():
    feed = FrameFeed(frames(20), lossless=True)
    seen = []
    for f in feed.frames():
        time.sleep(0.005)
        seen.append(f.index)
    assert seen == list(range(20)) and feed.dropped == 0
    feed.close()


def test_live_feed_drops_frames_while_the_consumer_is_busy():
    feed = FrameFeed(frames(40, fps=200.0), lossless=False)  # a frame every 5 ms
    seen = []
    for f in feed.frames():
        time.sleep(0.03)  # a 30 ms analysis
        seen.append(f.index)
    assert seen == sorted(seen) and seen[-1] >= 35
    assert len(seen) < 25 and feed.dropped > 15
    assert feed.latest().index == 39
    feed.close()


def test_a_second_consumer_goes_on_where_the_first_stopped_and_an_ended_source_restarts():
    feed = FrameFeed(frames(6), lossless=True)
    first = []
    for f in feed.frames():
        first.append(f.index)
        if len(first) == 2:
            break
    assert first == [0, 1]
    assert [f.index for f in feed.frames()] == [2, 3, 4, 5]
    assert [f.index for f in feed.frames()] == [0, 1, 2, 3, 4, 5]  # ended: opened again from its start
    feed.close()


def test_cancel_and_source_errors_reach_the_consumer():
    stop = threading.Event()
    feed = FrameFeed(frames(1000, fps=10.0), lossless=False)
    it = feed.frames(stop)
    next(it)
    stop.set()
    with pytest.raises(Cancelled):
        next(it)
    feed.close()
    broken = FrameFeed(frames(10, fail_at=3), lossless=True)
    with pytest.raises(SourceError, match="camera unplugged"):
        list(broken.frames())
    broken.close()


def test_an_unopenable_source_fails_at_start():
    def opener():
        raise SourceError("cannot open camera 0")
    with pytest.raises(SourceError, match="cannot open camera 0"):
        FrameFeed(opener).start()


# -------------------------------------------------------------------- capture


def analysis(codes=(), analysed=True):
    return SimpleNamespace(reasons=list(codes), analysed=analysed)


def test_capture_takes_usable_frames_spaced_in_source_time():
    cap = EnrollmentCapture(wanted=3, interval_s=0.2)
    lines = [cap.offer(Frame(i, i / 10, None, f"f{i}"), analysis()) for i in range(5)]
    assert [f.index for f in cap.frames] == [0, 2, 4] and cap.complete  # 0.2 s apart, float times included
    assert lines[-1] == "Hold still: captured 3 of 3"
    cap = EnrollmentCapture(wanted=2, interval_s=0.0)
    assert cap.offer(Frame(0, 0.0, None, "a"), analysis([reasons.TOO_DARK], analysed=False)) == \
        "More light: the face is too dark"
    assert cap.offer(Frame(1, 0.1, None, "b"), None) == "This frame could not be read"
    assert cap.frames == []


# ----------------------------------------------------------------------- flow


class Counting(Flow):
    name = "count"

    def work(self):
        for i in range(5):
            self.publish(frame_index=i)
        return {"done": True}


def test_a_flow_holds_where_asked_and_goes_on_when_released():
    flow = Counting(feed=None)
    flow.hold_when(lambda v: v.frame_index == 2)
    flow.start()
    deadline = time.monotonic() + 5
    while not flow.view().held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flow.view().held and flow.view().frame_index == 2
    flow.release()
    flow.join(5)
    view = flow.view()
    assert view.finished and view.outcome == {"done": True} and view.frame_index == 4 and not view.held


def test_move_hint_says_where_the_oval_is_on_the_preview():
    target = Target(0.7, 0.5)
    box = [64.0, 175.0, 130.0, 130.0]  # centred at (129, 240) of a 640x480 frame: left of the oval
    assert move_hint(box, (480, 640), target) == "Move right into the oval"
    assert move_hint(box, (480, 640), target, mirror=True) == "Move left into the oval"  # the preview is mirrored
    assert move_hint([383.0, 175.0, 130.0, 130.0], (480, 640), target) == ""
    assert move_hint(box, (480, 640), None) == "" and move_hint(None, (480, 640), target) == ""
