"""`make arm64-check`: the edge runtime on an emulated ARM64 machine (qemu-user), compared with this x86 one.

``python .ci/arm64/check.py [--work DIR] [--data DIR] [--faces N] [--out DIR]``

1. ``setup.sh``: qemu-user, a Debian bookworm arm64 root, an aarch64 venv with
   only ``facelivenet[edge]`` from this tree's wheel (resolved by the aarch64
   pip), ``pip check``;
2. on x86: the JAFFE frame sequences (``frames.py``);
3. on ARM and on x86 alike: ``facelive inspect``, ``facelive-bench device
   --data DIR --faces N``, ``facelive enroll`` + ``facelive auth`` on a genuine
   and a photo sequence (the runtime's default file), and ``outputs.py`` (every
   ONNX and TFLite file of the bundle on the same N reference faces: fp32, the
   weight-only int8 fallback and the static int8 files, whose integer kernels
   are where ARM results could drift);
4. the comparison (``compare.py``) and the targets; ``arm64_check.json`` and
   ``arm64_check.md`` in ``--out``. Exit 1 when a target fails.

Emulated timings are not device timings: the report gives none but the
check's own wall time. Downloads only in set-up (apt, Debian, PyPI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from compare import compare  # noqa: E402
from outputs import file_key  # noqa: E402

# recorded frame folders: no live target ovals, no random rests (they cannot answer a live prompt); 0.80 is
# under KL's genuine still cosines on the default model (0.82-1.0), as in the tests
AUTH_FLAGS = ["--fixed-order", "--positions", "off", "--timing", "off", "--challenge", "happy,surprise",
              "--threshold", "0.80", "--expression-threshold", "0.3", "--fps", "10", "--step-timeout", "2"]
FP32_COSINE_VS_X86 = 0.9999


def say(msg: str) -> None:
    print(f"arm64-check: {msg}", file=sys.stderr, flush=True)


class Machine:
    """One side of the check: its bin folder (console scripts + python) and where its files go."""

    def __init__(self, name: str, bin_dir: Path, out: Path, env: dict[str, str]):
        self.name, self.bin, self.out, self.env = name, bin_dir, out, env
        out.mkdir(parents=True, exist_ok=True)

    def run(self, tool: str, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, dict[str, Any]]:
        """Run a console script (or ``python``) with ``--json``-style output; (exit code, the JSON object)."""
        cmd = [str(self.bin / tool), *args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=3600)
        (self.out / "log.txt").open("a").write(f"$ {' '.join(cmd)}\n[exit {proc.returncode}, "
                                               f"{time.perf_counter() - start:.0f} s]\n{proc.stderr}\n")
        if proc.returncode not in ok:
            raise RuntimeError(f"{self.name}: {' '.join(cmd[:3])} exited {proc.returncode}: "
                               f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        lines = proc.stdout.strip().splitlines()
        return proc.returncode, (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {})


def run_side(m: Machine, data: Path, faces: int, frames: Path) -> dict[str, Any]:
    say(f"{m.name}: facelive inspect")
    _, where = m.run("python", "-c", "import json; from facelivenet.edge_runtime.bundle import resolve_bundle_dir as r; "
                                     "print(json.dumps({'bundle': str(r(None))}))")
    _, manifest = m.run("facelive", "inspect", where["bundle"], "--json")
    say(f"{m.name}: facelive-bench device --faces {faces}")
    code, device = m.run("facelive-bench", "device", "--data", str(data), "--faces", str(faces), "--runs", "3",
                         "--warmup", "1", "--gemm-n", "256", "--json", "--out", str(m.out / "device"), ok=(0, 1))
    db = m.out / "users.db"
    db.unlink(missing_ok=True)
    say(f"{m.name}: facelive enroll + auth (genuine, photo)")
    _, enroll = m.run("facelive", "enroll", "--db", str(db), "--user", "KL",
                      *(frames / "enroll.txt").read_text().split(), "--json")
    auth = {}
    for seq in ("genuine", "photo"):
        code_a, out = m.run("facelive", "auth", "--db", str(db), "--user", "KL", "--source", str(frames / seq),
                            *AUTH_FLAGS, "--json", ok=(0, 4))
        auth[seq] = {"exit": code_a, "decision": out.get("decision"), "reasons": out.get("reasons"),
                     "identity_aggregate": out.get("identity", {}).get("aggregate"),
                     "min_identity": out.get("min_identity"), "margins": out.get("expression", {}).get("margins"),
                     "steps": [(s["expected"], s["passed"], s["frames"]) for s in out.get("steps", [])]}
    say(f"{m.name}: outputs.py on {faces} reference faces")
    m.run("python", str(HERE / "outputs.py"), str(m.out / "outputs.npz"), "--data", str(data), "--faces", str(faces))
    rows = [{"file": file_key(r["format"], r["precision"], r.get("variant", "")), "runtime": r.get("runtime"),
             "parity_passed": r["parity"].get("passed"), "self_check_passed": r["self_check"].get("passed"),
             "cosine_mean": r["parity"].get("cosine_mean"), "top1": r["parity"].get("expression_top1_agreement")}
            for r in device.get("rows", [])]
    return {"manifest": manifest, "device_exit": code, "device_rows": rows,
            "device_skipped": device.get("skipped"), "parity_failed": device.get("parity_failed"),
            "real_faces": device.get("real_faces"), "pipeline_measured": (device.get("pipeline") or {}).get("measured"),
            "enroll": {k: enroll.get(k) for k in ("images_used", "rejected")}, "auth": auth}


def targets(arm: dict[str, Any], x86: dict[str, Any], parity: dict[str, Any], pip_ok: bool) -> list[dict[str, Any]]:
    x86_pass = {r["file"] for r in x86["device_rows"] if r["parity_passed"] and r["self_check_passed"]}
    arm_pass = {r["file"] for r in arm["device_rows"] if r["parity_passed"] and r["self_check_passed"]}
    same_auth = all((arm["auth"][s]["decision"], arm["auth"][s]["reasons"]) ==
                    (x86["auth"][s]["decision"], x86["auth"][s]["reasons"]) for s in ("genuine", "photo"))
    fp32 = {k: v["arm_vs_x86_identical_crops"]["cosine_min"] for k, v in parity["files"].items()
            if k.endswith("/fp32") and "arm_vs_x86_identical_crops" in v}
    fp32_e2e = {k: v["arm_vs_x86"]["cosine_min"] for k, v in parity["files"].items()
                if k.endswith("/fp32") and "arm_vs_x86" in v}
    litert = [r for r in arm["device_rows"] if r["file"].startswith("tflite/")]
    return [
        {"target": "pip check clean on aarch64", "holds": pip_ok},
        {"target": "LiteRT files load and pass on aarch64 (else onnxruntime fallback)",
         "holds": bool(litert) and all(r["parity_passed"] and r["self_check_passed"] for r in litert),
         "detail": arm["device_skipped"]},
        {"target": "every device-bench gate passing on x86 passes on ARM", "holds": x86_pass <= arm_pass and bool(x86_pass),
         "detail": sorted(x86_pass - arm_pass)},
        {"target": "same manifest from facelive inspect", "holds": arm["manifest"] == x86["manifest"]},
        {"target": "identical accept/reject decisions and reason codes", "holds": same_auth},
        {"target": f"fp32 embeddings within cosine {FP32_COSINE_VS_X86} of x86, identical crops (min over faces)",
         "holds": bool(fp32) and min(fp32.values()) >= FP32_COSINE_VS_X86, "detail": fp32},
        {"target": f"fp32 embeddings within cosine {FP32_COSINE_VS_X86} of x86, each machine's own alignment",
         "holds": bool(fp32_e2e) and min(fp32_e2e.values()) >= FP32_COSINE_VS_X86, "detail": fp32_e2e},
    ]


def _cell(d: dict[str, Any] | None, what: str = "mean/min") -> str:
    if not d:
        return "- | -"
    cos = f"{d['cosine_mean']:.6f} / {d['cosine_min']:.6f}" if what == "mean/min" else f"{d['cosine_min']:.7f}"
    gate = "" if "gate_passed" not in d else (" pass" if d["gate_passed"] else " FAIL")
    return f"{cos} | {d['top1_agreement']:.3f}{gate}"


def markdown(report: dict[str, Any]) -> str:
    p = report["parity"]
    lines = [f"ARM64 check ({report['emulation']}), {p['faces']} reference faces, {report['seconds']:.0f} s wall "
             "time (emulated: no device timings).", "",
             "| file | runtime on ARM | ARM vs torch: cos mean / min | top-1, gate | x86 vs torch: cos mean / min "
             "| top-1, gate | ARM vs x86, identical crops: cos min | top-1 | ARM vs x86, own alignment: cos min "
             "| top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in p["files"].items():
        lines.append(f"| {key} | {r['runtime_arm']} | {_cell(r.get('arm_vs_torch'))} | {_cell(r.get('x86_vs_torch'))} "
                     f"| {_cell(r.get('arm_vs_x86_identical_crops'), 'min')} | {_cell(r.get('arm_vs_x86'), 'min')} |")
    c = p["crops_arm_vs_x86"]
    lines += ["", f"Crops ARM vs x86: {c['identical']} of {c['crops']} identical; over the differing ones max pixel "
                  f"diff {c['max_abs_diff']}, largest per-crop mean diff {c['max_crop_mean_abs_diff']} grey levels, "
                  f"{100 * c['changed_pixel_fraction']:.1f} % of their pixels changed.", "",
              "| sequence | ARM decision / reasons | x86 decision / reasons | identity aggregate ARM / x86 |",
              "|---|---|---|---|"]
    for seq in ("genuine", "photo"):
        a, x = report["arm"]["auth"][seq], report["x86"]["auth"][seq]
        lines.append(f"| {seq} | {a['decision']} {a['reasons']} | {x['decision']} {x['reasons']} "
                     f"| {a['identity_aggregate']:.6f} / {x['identity_aggregate']:.6f} |")
    lines += ["", "| target | holds |", "|---|---|"]
    lines += [f"| {t['target']} | {'yes' if t['holds'] else 'NO'} |" for t in report["targets"]]
    lines += ["", "aarch64 packages: " + ", ".join(f"{k} {v}" for k, v in report["aarch64_packages"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(os.environ.get("ARM64_WORK", Path.home() / ".cache/facelivenet-arm64")))
    p.add_argument("--data", type=Path, default=Path(os.environ.get("FACELIVE_DATA", REPO.parent / "shared/data")))
    p.add_argument("--faces", type=int, default=24)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    start = time.perf_counter()
    work, out = args.work.resolve(), (args.out or args.work / "report").resolve()
    if REPO in (work, *work.parents):
        p.error(f"--work {work} is inside the repository; keep the arm64 root outside it")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(HERE / "setup.sh"), str(work), str(REPO), sys.executable], check=True)
    say("x86: the frame sequences")
    frames = work / "frames"
    subprocess.run([sys.executable, str(HERE / "frames.py"), str(frames), str(args.data / "jaffe")], check=True)
    env = dict(os.environ, FACELIVE_DATA=str(args.data), OMP_NUM_THREADS="1")
    sides = {}
    for name, bin_dir in (("x86", Path(sys.executable).parent), ("arm", work / "venv" / "bin")):
        (out / name / "log.txt").unlink(missing_ok=True)
        # the aarch64 side runs the installed wheel only, never a source tree on PYTHONPATH
        side_env = env if name == "x86" else {k: v for k, v in env.items() if k != "PYTHONPATH"}
        sides[name] = run_side(Machine(name, bin_dir, out / name, side_env), args.data, args.faces, frames)
    parity = compare([out / "arm" / "outputs.npz"], [out / "x86" / "outputs.npz"])
    pip_ok = (work / "pip_check.rc").read_text().strip() == "0"
    packages = {d["name"]: d["version"] for d in json.loads((work / "pip_list.json").read_text())}
    cpu = os.environ.get("FACELIVE_QEMU_CPU", "cortex-a76")
    qemu = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    report = {"emulation": f"{qemu}, -cpu {cpu}", "parity": parity, "arm": sides["arm"], "x86": sides["x86"],
              "pip_check": (work / "pip_check.txt").read_text().strip(), "aarch64_packages": packages,
              "targets": targets(sides["arm"], sides["x86"], parity, pip_ok),
              "seconds": round(time.perf_counter() - start, 1)}
    (out / "arm64_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "arm64_check.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0 if all(t["holds"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
