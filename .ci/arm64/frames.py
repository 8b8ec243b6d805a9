"""Write the two JAFFE-built frame sequences the ARM64 check authenticates (x86, once per check).

``python frames.py OUT_DIR JAFFE_DIR`` -> ``OUT_DIR/genuine`` (KL: neutral, happy,
neutral, surprise, 4 frames each) and ``OUT_DIR/photo`` (one neutral photo of KL
held up for 30 frames), 640x480 PNGs built by the tests' own frame builder
(``tests/edge_runtime/frames.py``), the sequences of
``tests/edge_runtime/test_runtime_cli.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the tests' frame builder
from tests.edge_runtime.frames import scripted  # noqa: E402

SEQUENCES = {
    "genuine": ["KL.NE2.156"] * 4 + ["KL.HA2.159"] * 4 + ["KL.NE2.156"] * 4 + ["KL.SU3.166"] * 4,
    "photo": ["KL.NE2.156"] * 30,
}
ENROLL = ["KL.NE1.155", "KL.NE3.157"]


def main(argv: list[str] | None = None) -> int:
    out, jaffe = (Path(a) for a in (argv or sys.argv[1:]))
    for name, stems in SEQUENCES.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in scripted([jaffe / f"{s}.tiff" for s in stems]):
            cv2.imwrite(str(folder / f"{f.index:03d}.png"), f.image)
    (out / "enroll.txt").write_text("\n".join(str(jaffe / f"{s}.tiff") for s in ENROLL) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
