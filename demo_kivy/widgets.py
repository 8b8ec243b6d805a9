"""Small Kivy widgets shared by the screens: the camera preview, score meters, the step bar."""

from __future__ import annotations

import numpy as np
from kivy.graphics.texture import Texture
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.widget import Widget

BG = (0.09, 0.10, 0.12, 1)
PANEL = (0.15, 0.16, 0.19, 1)
ACCENT = (0.20, 0.55, 0.95, 1)
GOOD = (0.20, 0.72, 0.40, 1)
BAD = (0.86, 0.26, 0.24, 1)
WARN = (0.98, 0.67, 0.15, 1)

Builder.load_string("""
#:import dp kivy.metrics.dp
<Screen>:
    canvas.before:
        Color:
            rgba: 0.09, 0.10, 0.12, 1
        Rectangle:
            pos: self.pos
            size: self.size

<Title@Label>:
    font_size: '24sp'
    bold: True
    size_hint_y: None
    height: dp(44)

<Words@Label>:
    font_size: '15sp'
    size_hint_y: None
    height: max(dp(24), self.texture_size[1] + dp(4))
    text_size: self.width, None
    halign: 'center'

<Action@Button>:
    font_size: '17sp'
    size_hint_y: None
    height: dp(52)
    background_normal: ''
    background_color: 0.20, 0.55, 0.95, 1

<Quiet@Button>:
    font_size: '15sp'
    size_hint_y: None
    height: dp(44)
    background_normal: ''
    background_color: 0.25, 0.27, 0.31, 1

<Meter>:
    size_hint_y: None
    height: dp(22)
    spacing: dp(6)
    Label:
        text: root.label
        bold: root.highlight
        color: (1, 1, 1, 1) if root.highlight else (0.75, 0.77, 0.8, 1)
        font_size: '13sp'
        size_hint_x: None
        width: dp(92)
        text_size: self.size
        halign: 'left'
        valign: 'middle'
    Widget:
        canvas:
            Color:
                rgba: 0.25, 0.27, 0.31, 1
            Rectangle:
                pos: self.pos
                size: self.size
            Color:
                rgba: root.colour
            Rectangle:
                pos: self.pos
                size: self.width * max(0.0, min(1.0, root.value)), self.height
            Color:
                rgba: (1, 1, 1, 0.9) if root.mark >= 0 else (0, 0, 0, 0)
            Rectangle:
                pos: self.x + self.width * max(0.0, min(1.0, root.mark)) - dp(1), self.y - dp(2)
                size: dp(2), self.height + dp(4)
    Label:
        text: root.value_text
        font_size: '13sp'
        size_hint_x: None
        width: dp(52)

<StepBar>:
    size_hint_y: None
    height: dp(10)

<PreviewImage>:
    fit_mode: 'contain'
    canvas.before:
        Color:
            rgba: 0.04, 0.04, 0.05, 1
        Rectangle:
            pos: self.pos
            size: self.size
""")


class Meter(BoxLayout):
    """A labelled bar for a score in [0, 1], with an optional threshold mark."""

    label = StringProperty("")
    value = NumericProperty(0.0)
    mark = NumericProperty(-1.0)  # < 0: no mark
    value_text = StringProperty("-")
    colour = ListProperty(list(ACCENT))
    highlight = BooleanProperty(False)

    def set(self, value: float | None, passed: bool | None = None) -> None:
        """Show ``value`` (None: no reading); green/red when ``passed`` is known."""
        self.value = 0.0 if value is None else float(value)
        self.value_text = "-" if value is None else f"{value:.2f}"
        self.colour = list(ACCENT if passed is None else (GOOD if passed else WARN))


class StepBar(Widget):
    """``count`` segments: the passed ones green, the current one amber, the rest grey."""

    count = NumericProperty(0)
    done = NumericProperty(0)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bind(pos=self._draw, size=self._draw, count=self._draw, done=self._draw)

    def _draw(self, *_args) -> None:
        from kivy.graphics import Color, Rectangle

        self.canvas.clear()
        n = int(self.count)
        if n <= 0:
            return
        gap = 4
        w = (self.width - gap * (n - 1)) / n
        with self.canvas:
            for i in range(n):
                Color(*(GOOD if i < self.done else WARN if i == self.done else (0.3, 0.32, 0.36, 1)))
                Rectangle(pos=(self.x + i * (w + gap), self.y), size=(w, self.height))


class PreviewImage(Image):
    """Shows RGB frames by blitting them into a texture (no Kivy camera provider involved)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._tex: Texture | None = None
        self.shown_key = None

    def show_rgb(self, rgb: np.ndarray) -> None:
        """Display an (H, W, 3) uint8 RGB picture."""
        h, w = rgb.shape[:2]
        if self._tex is None or self._tex.size != (w, h):
            self._tex = Texture.create(size=(w, h), colorfmt="rgb")
            self._tex.flip_vertical()  # image rows run top-down, GL textures bottom-up
        self._tex.blit_buffer(np.ascontiguousarray(rgb).tobytes(), colorfmt="rgb", bufferfmt="ubyte")
        if self.texture is not self._tex:
            self.texture = self._tex
        self.canvas.ask_update()

    def clear(self) -> None:
        self.texture = None
        self._tex = None
        self.shown_key = None


def refresh_labels(root: Widget) -> None:
    """Render every label's text now (labels otherwise update on the next clock tick): for screenshots."""
    for w in root.walk():
        if isinstance(w, Label):
            w.texture_update()
