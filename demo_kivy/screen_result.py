"""The result screen: accepted or rejected, and why, in plain words, with the session's evidence."""

from __future__ import annotations

from typing import Any

from kivy.lang import Builder
from kivy.uix.screenmanager import Screen

from facelivenet.edge_runtime.reasons import Decision

from .widgets import BAD, GOOD

Builder.load_string("""
<MonoLines@Label>:
    text: ''
    font_size: '14sp'
    font_name: 'RobotoMono-Regular'
    text_size: self.width, None
    size_hint_y: None
    height: self.texture_size[1] + dp(8)
    halign: 'left'

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
        MonoLines:
            id: evidence
        MonoLines:
            id: steps
        Widget:
        Action:
            text: 'Try again'
            on_release: app.start_auth()
        Quiet:
            text: 'Home'
            on_release: app.go_home()
""")


def step_lines(steps: list[dict[str, Any]]) -> str:
    """One line per challenge step: asked expression, passed or not, time, best probability, identity,
    and for an expression step its rise over the face at rest (log-odds)."""
    lines = []
    for s in steps:
        duration = "-" if s.get("duration_s") is None else f"{s['duration_s']:.1f} s"
        identity = "-" if s.get("min_identity") is None else f"{s['min_identity']:.3f}"
        rise = "" if s.get("margin") is None else f"  rise {s['margin']:+.2f}"
        lines.append(f"{s['expected']:<9} {'passed' if s['passed'] else 'FAILED':<7} {duration:>6}"
                     f"  p {s['best_probability']:.2f}  id {identity}{rise}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def evidence_lines(outcome: dict[str, Any]) -> str:
    """The session's identity evidence and expression margin, each against its threshold ('' when absent); in
    server mode, which server decided which session."""
    ev, ex = outcome.get("identity") or {}, outcome.get("expression") or {}
    lines = []
    if outcome.get("server"):  # server mode: the evidence stays on the server (its admin read)
        lines.append(f"decided by the server {outcome['server']}")
        if outcome.get("session_id"):
            lines.append(f"session {outcome['session_id']}, {outcome.get('frames', 0)} frames sent")
    if ev:
        lines.append(f"identity at rest {_num(ev.get('aggregate'))} (>= {_num(ev.get('aggregate_threshold'))}, "
                     f"{ev.get('neutral_frames', 0)} frames)")
        lines.append(f"continuity min   {_num(ev.get('min_continuity'))} (>= {_num(ev.get('continuity_threshold'))})")
        lines.append(f"identity min     {_num(ev.get('min_score'))} (floor {_num(ev.get('floor_threshold'))})")
    if ex:
        margins = ", ".join("-" if m is None else f"{m:+.2f}" for m in ex.get("margins", [])) or "-"
        lines.append(f"expression rise  {margins} (>= {ex.get('margin_threshold', 0):.2f} over rest)")
    return "\n".join(lines)


class ResultScreen(Screen):
    """Shows one authentication outcome (the session's result dict)."""

    def show(self, outcome: dict[str, Any]) -> None:
        ids = self.ids
        accepted = outcome["decision"] == Decision.ACCEPT
        ids.decision.text = "ACCEPTED" if accepted else "REJECTED"
        ids.decision.color = GOOD if accepted else BAD
        identity = outcome.get("min_identity")
        ids.user.text = (f"{outcome.get('user', '')}" + ("" if identity is None else f"  (lowest identity score "
                                                        f"{identity:.3f})"))
        words = outcome.get("reason_text") or []
        ids.reasons.text = ("Every step was passed in time by the enrolled person" if accepted
                            else "\n".join(w[:1].upper() + w[1:] for w in words))
        ids.detail.text = outcome.get("detail", "") if not accepted else ""
        ids.evidence.text = evidence_lines(outcome)
        ids.steps.text = step_lines(outcome.get("steps", []))

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return f"{self.ids.decision.text}: {self.ids.reasons.text}"
