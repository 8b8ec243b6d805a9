"""Server CPU per frame, sequential: one keep-alive client in another process sends the same 640x480 JAFFE frame
(KL, JPEG q90) in sessions of 50 frames to a real 1-worker `facelive serve` (SQLite), 5 blocks; then the same
JPEG decoded and analysed (FacePipeline.analyze, no session rules) in this process, 5 blocks.
Run from the repository root: FACELIVE_DETECTOR=... .venv/bin/python benchmarks/results/serve/fast_path/sequential_overhead.py DB N
[serve args...]"""
import json, os, subprocess, sys, tempfile, time, glob
from pathlib import Path
import cv2, numpy as np
sys.path.insert(0, ".")
from facelivenet.server.client import Client

db = sys.argv[1]; N = int(sys.argv[2]); extra = sys.argv[3:]
py = ".venv/bin/facelive"
def key(name, scope):
    out = subprocess.run([py, "keys", "add", name, "--scope", scope, "--db", db, "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["key"]
admin, app = key("a", "admin"), key("b", "app")
cfg = Path(tempfile.mkdtemp()) / "c.yaml"
cfg.write_text("rate_sessions_per_min: 1000000\nrate_frames_per_s: 1000000\nsession:\n  max_failures: 1000000\n")
port = "8765"
env = dict(os.environ, OMP_NUM_THREADS="1")
srv = subprocess.Popen([py, "serve", "--port", port, "--db", db, "--workers", "1", "--config", str(cfg), *extra],
                       stdout=subprocess.DEVNULL, stderr=open("/tmp/overhead_server.log", "w"), env=env)
try:
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            Client(url, admin).health(); break
        except Exception: time.sleep(0.2)
    jaffe = sorted(glob.glob(os.path.join(os.environ.get("FACELIVE_DATA", "../shared/data"), "jaffe", "**", "KL*"), recursive=True))
    imgs = [cv2.imread(p) for p in jaffe[:4]]
    def frame(img):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        h, w = img.shape[:2]; canvas[112:112+h, 192:192+w] = img
        return canvas
    Client(url, admin).enroll("KL", [frame(i) for i in imgs])
    body = cv2.imencode(".jpg", frame(imgs[0]), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    c = Client(url, app)
    def stat():
        pids = [srv.pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(srv.pid)], capture_output=True, text=True).stdout.split()]
        tot = 0
        for p in pids:
            f = open(f"/proc/{p}/stat").read().split()
            tot += int(f[13]) + int(f[14]); stat.sys += int(f[14]) / os.sysconf("SC_CLK_TCK")
        return tot / os.sysconf("SC_CLK_TCK")
    stat.sys = 0.0
    def run(n):
        sent = 0; lat = []
        while sent < n:
            s = c.start_session("KL")
            k = 0
            while s.pending and sent < n and k < 50:
                k += 1
                t0 = time.perf_counter(); s.send(body, time.time()); lat.append(time.perf_counter() - t0); sent += 1
            s.result()
        return lat
    run(50)
    blocks = []
    for b in range(5):
        c0, w0 = stat(), time.perf_counter()
        lat = run(N // 5)
        c1, w1 = stat(), time.perf_counter()
        blocks.append(1e3 * (c1 - c0) / (N // 5))
    print(f"system share of server CPU (all blocks + warm-up): {stat.sys:.2f} s")
    print("server CPU per frame by block (ms):", " ".join(f"{x:.2f}" for x in blocks), f"min {min(blocks):.2f} median {np.median(blocks):.2f}")
finally:
    srv.terminate(); srv.wait()
# offline: decode + feed_frame in this process, one thread
os.environ["OMP_NUM_THREADS"] = "1"
from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.options import RuntimeOptions
from facelivenet.edge_runtime.authenticate import feed_frame
from facelivenet.edge_runtime.sources import Frame
pipe = open_pipeline(RuntimeOptions(threads=1)) if "threads" in RuntimeOptions.__dataclass_fields__ else open_pipeline(RuntimeOptions())
blocks = []
for b in range(5):
    t0 = time.process_time()
    for i in range(N // 5):
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        pipe.analyze(img)
    blocks.append(1e3 * (time.process_time() - t0) / (N // 5))
print("offline decode + pipeline CPU per frame by block (ms):", " ".join(f"{x:.2f}" for x in blocks), f"min {min(blocks):.2f} median {np.median(blocks):.2f}")
