"""A real client session against a real `facelive serve` (1 worker, a fresh SQLite file, the defaults):
JAFFE subject KL rendered as the attack suite renders a performer, following what the server asks, one frame
every 0.1 s of real time; every exchange traced by the Python client (the key never appears: the trace leaves
the Authorization header out). Prints the first three frames, the last two and the result.
Run from the repository root: FACELIVE_DATA=... FACELIVE_DETECTOR=... .venv/bin/python
benchmarks/results/serve/fast_path/transcript.py > benchmarks/results/serve/fast_path/transcript.txt"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, ".")
from facelivenet.server.client import Client  # noqa: E402
from tests.server.app_fixtures import Performer  # noqa: E402

work = Path(tempfile.mkdtemp())
db, port = str(work / "users.db"), "8766"
cli = ".venv/bin/facelive"


def key(name: str, scope: str) -> str:
    out = subprocess.run([cli, "keys", "add", name, "--scope", scope, "--db", db, "--json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)["key"]


admin, app = key("back-office", "admin"), key("door-app", "app")
server = subprocess.Popen([cli, "serve", "--port", port, "--db", db], stdout=subprocess.DEVNULL,
                          stderr=open(work / "server.log", "w"))
exchanges = []
try:
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            Client(url, admin).health()
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    kl = Performer(Path(os.environ.get("FACELIVE_DATA", "../shared/data")) / "jaffe", "KL", seed=7)
    Client(url, admin).enroll("KL", kl.enroll_images[:2])
    client = Client(url, app, trace=exchanges.append)
    session = client.start_session("KL")
    step, start, i = exchanges[-1]["response"]["step"], time.monotonic(), 0
    while session.pending and i < 300:
        time.sleep(max(0.0, start + i * 0.1 - time.monotonic()))
        reply = session.send(kl.frame(i, step), time.monotonic())
        step = reply.raw.get("step")
        i += 1
    outcome = session.result()
finally:
    server.terminate()
    server.wait()
frames = [e for e in exchanges if "/frames" in e["path"]]
shown = [exchanges[0], *frames[:3], *frames[-2:], exchanges[-1]]
print(f"# {len(frames)} frames sent; decision {outcome.decision}, reason {outcome.reason}; "
      f"{len(exchanges)} exchanges, {len(shown)} shown")
for e in shown:
    path = e["path"].split("nonce=")[0] + ("nonce=..." if "nonce=" in e["path"] else "")
    print(f"\n{e['method']} {path}  ->  {e['status']}")
    if e.get("request") is not None:
        print("  request:", json.dumps(e["request"]) if not isinstance(e["request"], str) else e["request"])
    print("  answer: ", json.dumps(e["response"]))
