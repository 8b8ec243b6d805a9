"""Where a served frame's CPU goes: yappi (CPU clock, every thread) over 5 genuine JAFFE sessions (KL) sent
through the app in-process (tests/server/app_fixtures: FastAPI's TestClient, a test clock, SQLite).
Run from the repository root: FACELIVE_DETECTOR=... .venv/bin/python benchmarks/results/serve/profile_frame.py
(needs `pip install yappi`; output: profile_frame.txt). yappi's own overhead inflates Python-heavy calls."""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, ".")
import yappi
from tests.server import app_fixtures as af
from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.options import RuntimeOptions
pipe = open_pipeline(RuntimeOptions())
jaffe = Path("/work/shared/data/jaffe")
d = tempfile.mkdtemp()
perf = af.Performer(jaffe, "KL")
frames = 0
with af.serve(str(Path(d) / "s.db"), pipe) as served:
    served.enroll("KL", perf.enroll_images)
    yappi.set_clock_type("cpu")
    yappi.start()
    for k in range(5):
        sess = served.start("KL") if hasattr(served, "start") else served.start_session("KL")
        sent = af.perform(served, af.Performer(jaffe, "KL", seed=k), sess)
        frames += len(sent)
    yappi.stop()
print("frames", frames)
st = yappi.get_func_stats()
want = ["_frame", "feed_served_frame", "feed_frame", "decode_jpeg", "loads", "dumps", "update_session", "authorize",
        "post_frame", "session", "nonce_pair", "render", "jpeg", "_check_order", "step_view", "check_key", "key",
        "serialize_response", "jsonable_encoder", "request_response", "run_endpoint_function", "solve_dependencies", "body", "__call__"]
rows = []
for s in st:
    if s.name in want:
        rows.append((s.ttot, s.ncall, s.name, s.module[-60:]))
for ttot, n, name, mod in sorted(rows, reverse=True)[:45]:
    print(f"{ttot/frames*1e3:8.3f} ms/frame  n={n:6d}  {name:28s} {mod}")
