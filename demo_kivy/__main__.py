"""``python -m facelivenet.demo_kivy``: the same as ``facelive-demo``."""

import sys

from .app import main

sys.exit(main())
