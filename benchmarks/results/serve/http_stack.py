"""Server CPU per request of the HTTP stack alone (GET /v1/health, 3000 keep-alive requests after 200 warm-up):
uvicorn's h11 vs httptools parser, access log on / off. Run from the repository root:
.venv/bin/python benchmarks/results/serve/http_stack.py (output: http_stack.txt)."""
import http.client, time, subprocess, sys, socket, os, json, tempfile
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def run(http_impl, access, n=3000):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    code = f"""
import uvicorn
from facelivenet.server.app import create_app
from facelivenet.server.config import ServerConfig
cfg = ServerConfig(host='127.0.0.1', port={port}, db=f'{tempfile.gettempdir()}/facelive-http-stack.db')
uvicorn.run(create_app(cfg), host='127.0.0.1', port={port}, http='{http_impl}', access_log={access}, log_level='info')
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/v1/health"); r=c.getresponse(); r.read(); break
        except OSError as e: time.sleep(0.1)
    for k in range(200):
        c.request("GET", "/v1/health"); c.getresponse().read()
    c0, t0 = cpu(p.pid), time.perf_counter()
    for k in range(n):
        c.request("GET", "/v1/health"); c.getresponse().read()
    out = {"server_cpu_ms": round((cpu(p.pid)-c0)/n*1e3, 3), "wall_ms": round((time.perf_counter()-t0)/n*1e3, 3)}
    c.close(); p.terminate(); p.wait()
    return out
print(json.dumps({f"{h} access_log={a}": run(h, a) for h in ("h11", "httptools") for a in (True, False)}, indent=1))
