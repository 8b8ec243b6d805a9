"""feed_served_frame in-process (no HTTP), with the key check, on the same frame as sequential_overhead.py:
CPU per frame against decode + analyze, and a cProfile of the served frames. Run from the repository root:
FACELIVE_DETECTOR=... .venv/bin/python benchmarks/results/serve/fast_path/in_process.py"""
import os, sys, time, glob, tempfile, cProfile, pstats
from pathlib import Path
import cv2, numpy as np
sys.path.insert(0, ".")
from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.options import RuntimeOptions
from facelivenet.edge_runtime.enrollment import enroll_frames
from facelivenet.edge_runtime.sources import Frame
from facelivenet.server.config import ServerConfig
from facelivenet.server.keys import new_key, check_key
from facelivenet.server.sessions import Worker, start_session
from facelivenet.server.frames import feed_served_frame
from facelivenet.server.store import open_store
db = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "s.db")
pipe = open_pipeline(RuntimeOptions())
cfg = ServerConfig.from_dict({"db": db, "max_frames": 100000})
worker = Worker(cfg, pipe)
store = open_store(db)
k, rec = new_key("a", "app"); store.add_key(rec)
imgs = [cv2.imread(p) for p in sorted(glob.glob(os.path.join(os.environ.get("FACELIVE_DATA", "../shared/data"), "jaffe", "**", "KL*"), recursive=True))[:4]]
def frame(img):
    c = np.full((480, 640, 3), 128, np.uint8); h, w = img.shape[:2]; c[112:112+h, 192:192+w] = img; return c
class W:
    def __init__(s, st): s.put = st.put_template
enroll_frames(pipe, W(store), "KL", [Frame(i, float(i), frame(im), f"i{i}") for i, im in enumerate(imgs)])
body = cv2.imencode(".jpg", frame(imgs[0]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
def run(n):
    sent = 0
    while sent < n:
        now = time.time()
        row, nonce = start_session(worker, store, "KL", rec.key_id, now)
        for i in range(50):
            now = time.time()
            key = check_key(store, k, "app")
            out = feed_served_frame(worker, store, row.session_id, key, i, now, nonce, body, now)
            nonce = out["nonce"]; sent += 1
            if nonce is None: break
run(50)
N = 1000
pr = cProfile.Profile()
t0 = time.process_time(); pr.enable(); run(N); pr.disable(); t1 = time.process_time()
t2 = time.process_time(); run(N); t3 = time.process_time()
print(f"in-process served frame (key check + feed_served_frame) {1e3*(t3-t2)/N:.3f} ms CPU/frame")
b = []
t0 = time.process_time()
for i in range(N):
    pipe.analyze(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
print(f"decode + analyze {1e3*(time.process_time()-t0)/N:.3f} ms CPU/frame")
st = pstats.Stats(pr); st.sort_stats("tottime")
st.print_stats(25)
