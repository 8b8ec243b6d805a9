"""Drive a probe's script from Kivy's clock: shared by the probes that test_demo_*.py run in a fresh process
(imported after the probe has prepared Kivy's environment)."""

from __future__ import annotations

from typing import Callable, Iterator

from kivy.clock import Clock


def stepping_hook(make_steps: Callable[[object], Iterator[None]]) -> Callable[[object], None]:
    """An ``on_start_hook`` that advances ``make_steps(app)`` one step per 1/30 s and stops the app at its end."""

    def start(app) -> None:
        steps = make_steps(app)

        def tick(_dt) -> bool:
            try:
                next(steps)
                return True
            except StopIteration:
                app.stop()
                return False

        Clock.schedule_interval(tick, 1 / 30)

    return start
