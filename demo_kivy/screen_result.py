"""The result screen: accepted or rejected, and why, in plain words."""

from __future__ import annotations

from typing import Any

from kivy.lang import Builder
from kivy.uix.screenmanager import Screen

from .widgets import BAD, GOOD

Builder.load_string("""
<ResultScreen>:
    BoxLayout:
        orientation: 'vertical'
        padding: dp(16)
        spacing: dp(10)
        Label:
            id: decision
            text: ''
            font_size: '44sp'
            bold: True
            size_hint_y: None
            height: dp(80)
        Words:
            id: user
            text: ''
        Words:
            id: reasons
            text: ''
            font_size: '19sp'
        Words:
            id: detail
            text: ''
            color: 0.75, 0.77, 0.8, 1
        Label:
            id: steps
            text: ''
            font_size: '14sp'
            font_name: 'RobotoMono-Regular'
            text_size: self.width, None
            size_hint_y: None
            height: self.texture_size[1] + dp(8)
            halign: 'left'
        Widget:
        Action:
            text: 'Try again'
            on_release: app.start_auth()
        Quiet:
            text: 'Home'
            on_release: app.go_home()
""")


def step_lines(steps: list[dict[str, Any]]) -> str:
    """One line per challenge step: asked expression, passed or not, time, best probability, identity."""
    lines = []
    for s in steps:
        duration = "-" if s.get("duration_s") is None else f"{s['duration_s']:.1f} s"
        identity = "-" if s.get("min_identity") is None else f"{s['min_identity']:.3f}"
        lines.append(f"{s['expected']:<9} {'passed' if s['passed'] else 'FAILED':<7} {duration:>6}"
                     f"  p {s['best_probability']:.2f}  id {identity}")
    return "\n".join(lines)


class ResultScreen(Screen):
    """Shows one authentication outcome (the session's result dict)."""

    def show(self, outcome: dict[str, Any]) -> None:
        ids = self.ids
        accepted = outcome["decision"] == "accept"
        ids.decision.text = "ACCEPTED" if accepted else "REJECTED"
        ids.decision.color = GOOD if accepted else BAD
        identity = outcome.get("min_identity")
        ids.user.text = (f"{outcome.get('user', '')}" + ("" if identity is None else f"  (lowest identity score "
                                                        f"{identity:.3f})"))
        words = outcome.get("reason_text") or []
        ids.reasons.text = ("Every step was passed in time by the enrolled person" if accepted
                            else "\n".join(w[:1].upper() + w[1:] for w in words))
        ids.detail.text = outcome.get("detail", "") if not accepted else ""
        ids.steps.text = step_lines(outcome.get("steps", []))

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return f"{self.ids.decision.text}: {self.ids.reasons.text}"
