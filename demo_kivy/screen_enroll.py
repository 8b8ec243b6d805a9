"""The enroll screen: live preview, what to fix ("move closer", "more light", "only one face"), capture progress."""

from __future__ import annotations

from kivy.app import App
from kivy.lang import Builder

from .flow import LiveView
from .screen_capture import CaptureScreen
from .widgets import BAD, GOOD, WARN

Builder.load_string("""
<EnrollScreen>:
    BoxLayout:
        orientation: 'vertical'
        padding: dp(12)
        spacing: dp(8)
        Title:
            id: title
            text: 'Enroll'
        Label:
            id: guidance
            text: 'Look at the camera'
            font_size: '22sp'
            bold: True
            size_hint_y: None
            height: dp(64)
            text_size: self.width, None
            halign: 'center'
        PreviewImage:
            id: preview
        Meter:
            id: progress
            label: 'captured'
        Words:
            id: detail
            text: ''
            color: 0.75, 0.77, 0.8, 1
        Quiet:
            id: leave
            text: 'Cancel'
            on_release: app.go_home()
""")


class EnrollScreen(CaptureScreen):
    """Guides the person until enough usable frames are captured, then says how the enrollment went."""

    def start(self, user: str) -> None:
        self.ids.title.text = f"Enroll {user}"
        self.ids.leave.text = "Cancel"

    def show(self, view: LiveView) -> None:
        ids = self.ids
        wanted = max(view.wanted, 1)
        ids.progress.set(view.captured / wanted)
        ids.progress.value_text = f"{view.captured}/{view.wanted}"
        if view.finished:
            ids.leave.text = "Done"
            if view.error:  # the last guidance stays up: it says what to fix
                ids.guidance.text, ids.guidance.color = view.guidance or "Enrollment failed", BAD
                ids.detail.text = view.error
            elif view.outcome is not None:
                o = view.outcome
                ids.guidance.text, ids.guidance.color = view.guidance or "Enrolled", GOOD
                ids.detail.text = f"{o['images_used']} frame(s) used, {len(o['rejected'])} rejected"
            return
        ids.guidance.text = view.guidance
        ids.guidance.color = GOOD if view.usable else WARN if view.guidance else (1, 1, 1, 1)
        ids.detail.text = ""

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return self.ids.guidance.text

    def on_leave(self, *_args) -> None:
        App.get_running_app().engine.cancel()
