"""The settings screen: thresholds, the challenge set, the backend (format, precision, threads), timing,
the frame source, and the verification server (its URL and API key; an empty URL: this device decides).
Apply validates everything first; a bad value is named and nothing changes.

The API key is typed masked and never shown again: the field stays empty and
its hint shows the stored key masked, all but its last 4 characters; left
empty, Apply keeps the key. A plain http:// URL to another machine is warned
about as it is typed.
"""

from __future__ import annotations

from kivy.app import App
from kivy.lang import Builder
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.checkbox import CheckBox
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen
from kivy.uix.spinner import Spinner
from kivy.uix.textinput import TextInput

from facelivenet.edge_runtime.constants import FORMATS, PRECISIONS
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from .server_setting import clear_text_warning, mask_key, normalise_url, url_problem
from .settings import DemoSettings, SettingsError

Builder.load_string("""
<SettingsScreen>:
    BoxLayout:
        orientation: 'vertical'
        padding: dp(16)
        spacing: dp(8)
        Title:
            text: 'Settings'
        ScrollView:
            GridLayout:
                id: form
                cols: 2
                spacing: dp(6)
                size_hint_y: None
                height: self.minimum_height
                row_default_height: dp(40)
                row_force_default: True
        Words:
            id: server_warning
            text: ''
            color: 0.98, 0.67, 0.15, 1
        Words:
            id: error
            text: ''
            color: 0.86, 0.26, 0.24, 1
        Action:
            text: 'Apply'
            on_release: root.apply()
        Quiet:
            text: 'Back'
            on_release: app.go_home()
""")

AUTO = "auto"  # a choice left to the bundle (its default file)

# (label, settings field, kind); kind: text / int / float / optfloat / [opt]choice:<...> / source
FIELDS = (
    ("Bundle (empty: default)", "bundle", "opttext"),
    ("Format (auto: the bundle's default file)", "format", "optchoice:" + ",".join((AUTO, *FORMATS))),
    ("Precision", "precision", "optchoice:" + ",".join((AUTO, *PRECISIONS))),
    ("Threads", "threads", "int"),
    ("Identity threshold (cosine)", "threshold", "optfloat"),
    ("Expression threshold", "expression_threshold", "optfloat"),
    ("Hold frames", "hold_frames", "int"),
    ("Seconds per step", "step_timeout_s", "float"),
    ("Frames to enroll", "enroll_frames", "int"),
    ("Source", "source", "source"),
    ("Frames per second (files)", "fps", "float"),
)
SERVER_LABEL = "Server URL (or empty)"
NO_SERVER_HINT = "empty: this device decides"
KEY_LABEL = "Server API key (an app key)"
NO_KEY_HINT = "flk_... (from facelive keys add)"


def parse_field(kind: str, label: str, text: str):
    """A form value as its settings type; SettingsError naming the field when it does not parse."""
    text = text.strip()
    try:
        if kind in ("optfloat", "opttext") and not text or kind.startswith("optchoice:") and text == AUTO:
            return None
        if kind == "int":
            return int(text)
        if kind in ("float", "optfloat"):
            return float(text)
    except ValueError:
        raise SettingsError(f"{label}: {text!r} is not a number") from None
    if kind == "source":
        return tuple(text.split()) if text else ()
    return text


class SettingsScreen(Screen):
    """Edits a copy of the app's settings."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inputs: dict[str, object] = {}
        form = self.ids.form
        for label, key, kind in FIELDS:
            form.add_widget(Label(text=label, font_size="14sp", halign="left", text_size=(None, None)))
            widget = (Spinner(values=kind.split(":", 1)[1].split(",")) if "choice:" in kind
                      else TextInput(multiline=False, font_size="15sp"))
            self.inputs[key] = widget
            form.add_widget(widget)
        form.add_widget(Label(text="Mirror the preview", font_size="14sp"))
        self.mirror = CheckBox()
        form.add_widget(self.mirror)
        form.add_widget(Label(text="Challenge expressions", font_size="14sp"))
        self.expressions = BoxLayout(spacing=2)
        self.expression_boxes: dict[str, CheckBox] = {}
        form.add_widget(self.expressions)
        for label in EXPRESSION_LABELS[1:]:
            row = BoxLayout(orientation="vertical")
            box = CheckBox(size_hint_y=0.6)
            row.add_widget(box)
            row.add_widget(Label(text=label[:5], font_size="11sp", size_hint_y=0.4))
            self.expression_boxes[label] = box
            self.expressions.add_widget(row)
        self.server_url = self._row(form, SERVER_LABEL, TextInput(multiline=False, font_size="15sp",
                                                                  hint_text=NO_SERVER_HINT))
        self.api_key = self._row(form, KEY_LABEL, TextInput(multiline=False, font_size="15sp", password=True,
                                                            hint_text=NO_KEY_HINT))
        self.server_url.bind(text=lambda _w, text: self.show_server_warning(text))

    @staticmethod
    def _row(form, label: str, widget):
        form.add_widget(Label(text=label, font_size="14sp"))
        form.add_widget(widget)
        return widget

    def show_server_warning(self, text: str) -> None:
        """Warn while a URL that would send the key in clear is typed (a malformed one is named on Apply)."""
        url = normalise_url(text)
        self.ids.server_warning.text = "" if url is None or url_problem(url) else clear_text_warning(url)

    def load(self, settings: DemoSettings, bundle_thresholds: tuple[float, float] | None) -> None:
        """Fill the form from ``settings``; empty thresholds show the bundle's as a hint."""
        for label, key, kind in FIELDS:
            widget, value = self.inputs[key], settings.value(key)
            if isinstance(widget, Spinner):
                widget.text = AUTO if value is None else value
            else:
                widget.text = "" if value is None else (" ".join(value) if kind == "source" else str(value))
        if bundle_thresholds is not None:
            self.inputs["threshold"].hint_text = f"bundle: {bundle_thresholds[0]:.3f}"
            self.inputs["expression_threshold"].hint_text = f"bundle: {bundle_thresholds[1]:.2f}"
        self.mirror.active = settings.mirrors(settings.source)
        for label, box in self.expression_boxes.items():
            box.active = label in settings.session.challenge
        self.server_url.text = settings.server or ""
        self.api_key.text = ""  # never shown again: the hint shows it masked
        self.api_key.hint_text = f"{mask_key(settings.api_key)} (type to replace)" if settings.api_key else NO_KEY_HINT
        self.show_server_warning(self.server_url.text)
        self.ids.error.text = ""

    def read(self, current: DemoSettings) -> DemoSettings:
        """The settings the form describes; SettingsError on a bad value."""
        changes = {key: parse_field(kind, label, self.inputs[key].text) for label, key, kind in FIELDS}
        chosen = tuple(label for label, box in self.expression_boxes.items() if box.active)
        if not chosen:
            raise SettingsError("choose at least one challenge expression")
        # keep the given order of expressions that stay chosen (it matters with --fixed-order)
        current_order = current.session.challenge
        order = tuple(e for e in current_order if e in chosen) + tuple(e for e in chosen if e not in current_order)
        server = normalise_url(self.server_url.text)
        key = "" if server is None else (self.api_key.text.strip() or current.api_key)  # empty: keep the key
        return current.replace(challenge=order, mirror=self.mirror.active, server=server, api_key=key, **changes)

    def apply(self) -> None:
        app = App.get_running_app()
        try:
            app.apply_settings(self.read(app.engine.settings))
        except FaceLiveError as exc:  # said on the form; the settings stay as they were
            self.ids.error.text = str(exc)

    def summary_text(self) -> str:
        """The main words on screen (recorded with screenshots)."""
        return "Settings"
