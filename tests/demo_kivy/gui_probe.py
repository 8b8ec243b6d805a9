"""Run the demo as it runs with a window (live frames, 30 Hz refresh, automatic move to the result
screen), under SDL offscreen, press its buttons from Kivy's clock, and print what the screens showed
as one JSON line. Used by test_demo_gui.py in a fresh process: python gui_probe.py FOLDER DB DETECTOR."""

from __future__ import annotations

import json
import sys
import time

from facelivenet.demo_kivy.kivy_env import configure_window, prepare_kivy

prepare_kivy(headless=True)  # the offscreen environment; the app itself runs as with a window
configure_window((480, 860), headless=False)


from facelivenet.demo_kivy.engine import DemoEngine  # noqa: E402
from facelivenet.demo_kivy.settings import DemoSettings  # noqa: E402
from facelivenet.demo_kivy.ui import DemoApp  # noqa: E402
from probe_clock import stepping_hook  # noqa: E402


def script(app, folder: str, seen: dict):
    home = app.screen("home")
    app.start_enroll()  # camera 9: there is none
    seen["no_camera"] = {"screen": app.sm.current, "banner": home.ids.problem.text,
                         "offers_source": home.ids.source_row.parent is not None}
    home.ids.source_path.text = folder
    app.use_source(home.ids.source_path.text)
    yield
    flow = app.start_enroll()
    while not flow.view().finished:
        yield
    yield
    enroll = app.screen("enroll")
    seen["enroll"] = {"screen": app.sm.current, "guidance": enroll.ids.guidance.text, "button": enroll.ids.leave.text}
    app.go_home()
    seen["users"] = len(home.ids.users.children)
    app.show_settings()
    settings = app.screen("settings")
    settings.inputs["threshold"].text = "abc"
    settings.apply()
    seen["bad_setting"] = settings.ids.error.text
    settings.inputs["threshold"].text = "0.80"
    settings.apply()
    seen["after_apply"] = app.sm.current
    flow = app.start_auth()
    started = time.monotonic()
    while app.sm.current != "result" and time.monotonic() - started < 60:
        yield
    result = app.screen("result")
    seen["auth"] = {"screen": app.sm.current, "decision": (app.last_outcome or {}).get("decision"),
                    "reasons": (app.last_outcome or {}).get("reasons"), "frames": (app.last_outcome or {}).get("frames"),
                    "title": result.ids.decision.text, "dropped": app.engine.feed(app.engine.settings.source).dropped}


def main(folder: str, db: str, detector: str) -> None:
    # recorded frames cannot follow a live oval or rest: positions and timing off (as the headless tests' RECORDED)
    settings = DemoSettings().replace(source=("9",), db=db, detector=detector, fixed_order=True, threshold=0.80,
                                      expression_threshold=0.3, step_timeout_s=2.0, positions=None, timing=None,
                                      user="KL")
    engine = DemoEngine(settings, lossless=False)
    engine.load_model()
    seen: dict = {}

    DemoApp(engine, on_start_hook=stepping_hook(lambda app: script(app, folder, seen))).run()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:4])
