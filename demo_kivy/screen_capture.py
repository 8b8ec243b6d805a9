"""What the enroll and authenticate screens share: a running flow and its preview."""

from __future__ import annotations

from kivy.uix.screenmanager import Screen

from .feed import FrameFeed
from .flow import Flow, LiveView
from .preview import render_preview


class CaptureScreen(Screen):
    """A screen showing a flow's live view; the app calls :meth:`refresh` on its clock."""

    flow: Flow | None = None
    feed: FrameFeed | None = None
    mirror: bool = False

    def attach(self, flow: Flow, feed: FrameFeed, mirror: bool) -> None:
        """Show this flow from now on."""
        self.flow, self.feed, self.mirror = flow, feed, mirror
        self.ids.preview.clear()
        self.refresh()

    def detach(self) -> None:
        self.flow = self.feed = None

    def refresh(self) -> LiveView | None:
        """Update the preview and the words from the flow's latest view; returns that view."""
        if self.flow is None:
            return None
        view = self.flow.view()
        self.update_preview(view)
        self.show(view)
        return view

    def update_preview(self, view: LiveView) -> None:
        """Live mode: the newest frame (smooth) with the latest box; lossless: exactly the analysed frame."""
        frame = None if self.feed is None or self.feed.lossless else self.feed.latest()
        image = frame.image if frame is not None and frame.image is not None else view.image
        if image is None:
            return
        key = (frame.index if frame is not None else None, view.frame_index)
        preview = self.ids.preview
        if preview.shown_key == key:
            return
        good = view.usable and (view.identity is None or view.threshold is None or view.identity >= view.threshold)
        preview.show_rgb(render_preview(image, view.box, view.landmarks, good=good, mirror=self.mirror,
                                        target=view.target))
        preview.shown_key = key

    def show(self, view: LiveView) -> None:  # pragma: no cover - interface
        raise NotImplementedError
