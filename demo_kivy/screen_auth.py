"""The authenticate screen: the challenge as a big instruction, a countdown per step, progress across the
steps, the preview with the face box, the live identity score and the expression probabilities."""

from __future__ import annotations

from kivy.app import App
from kivy.lang import Builder

from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from .flow import LiveView
from .guidance import instruction, move_hint
from .screen_capture import CaptureScreen
from .widgets import Meter

Builder.load_string("""
<AuthScreen>:
    BoxLayout:
        orientation: 'vertical'
        padding: dp(12)
        spacing: dp(6)
        Label:
            id: instruction
            text: ''
            font_size: '38sp'
            bold: True
            size_hint_y: None
            height: dp(60)
        BoxLayout:
            size_hint_y: None
            height: dp(26)
            Label:
                id: step
                text: ''
                font_size: '15sp'
                text_size: self.size
                halign: 'left'
                valign: 'middle'
            Label:
                id: countdown
                text: ''
                font_size: '20sp'
                bold: True
                text_size: self.size
                halign: 'right'
                valign: 'middle'
        StepBar:
            id: steps
        PreviewImage:
            id: preview
        Meter:
            id: identity
            label: 'identity'
        BoxLayout:
            id: expressions
            orientation: 'vertical'
            size_hint_y: None
            height: self.minimum_height
            spacing: dp(3)
        Words:
            id: guidance
            text: ''
            color: 0.98, 0.67, 0.15, 1
        Quiet:
            text: 'Cancel'
            on_release: app.go_home()
""")


class AuthScreen(CaptureScreen):
    """One authentication attempt, live; the app moves to the result screen when it is decided."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.meters: dict[str, Meter] = {}
        for label in EXPRESSION_LABELS:
            meter = Meter(label=label)
            self.meters[label] = meter
            self.ids.expressions.add_widget(meter)

    def start(self, expression_threshold: float | None) -> None:
        """A new attempt; without a threshold (the server decides, its scores stay there) the meters have no
        mark."""
        for meter in self.meters.values():
            meter.mark = -1.0 if expression_threshold is None else expression_threshold
            meter.set(None)
        self.ids.identity.set(None)

    def show(self, view: LiveView) -> None:
        ids = self.ids
        expected = view.expected
        ids.instruction.text = instruction(expected) if not view.finished else "Deciding..."
        ids.step.text = f"Step {min(view.step_index + 1, view.step_count)} of {view.step_count}"
        ids.countdown.text = "" if view.remaining_s is None else f"{view.remaining_s:.1f} s"
        ids.steps.count, ids.steps.done = view.step_count, view.step_index
        if view.threshold is not None:
            ids.identity.mark = max(0.0, view.threshold)
        ids.identity.set(view.identity, None if view.identity is None else view.identity >= (view.threshold or 0))
        probs = view.probabilities
        for i, (label, meter) in enumerate(self.meters.items()):
            meter.highlight = label == expected
            p = None if probs is None else float(probs[i])
            meter.set(p, None if p is None or label != expected else p >= meter.mark)
        move = "" if view.image is None else move_hint(view.box, view.image.shape[:2], view.target, self.mirror)
        ids.guidance.text = view.guidance if not view.usable else move

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return self.ids.instruction.text

    def on_leave(self, *_args) -> None:
        App.get_running_app().engine.cancel()
