"""FaceLiveNet demo app (Kivy): enroll, then authenticate with a random expression challenge.

Built only on :mod:`facelivenet.edge_runtime` (no torch). Entry point:
:func:`facelivenet.demo_kivy.app.main` (``facelive-demo``). The modules that
do not import Kivy (settings, options, feed, flows, engine, preview, guidance)
can be used and tested without it.
"""
