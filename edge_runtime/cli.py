"""``facelive``: the torch-free command line of the edge runtime.

Every subcommand follows the convention of every facelivenet CLI (:mod:`.cli_common`;
ARCHITECTURE.md, "Commands"):

- ``--json`` prints exactly ONE JSON object on stdout; logs go to stderr;
- exit code 0 on success; on failure a non-zero code and one line
  ``facelive: error: <reason>`` on stderr (with ``--json`` the one JSON object
  on stdout is then ``{"error": ..., "error_type": ...}``, or the command's
  partial result carrying an ``"error"`` key).

Subcommands are registered in :data:`_SUBCOMMANDS`; each has an ``_add_<name>``
function that builds its parser and sets ``handler``. A handler returns
``(exit_code, payload, text)``: :func:`main` prints ``payload`` as JSON with
``--json``, ``text`` otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

from . import cli_runtime
from .cli_common import (CommandLineError, HelpFormatter, add_bundle_option, add_detector_option, add_json_flag,
                         add_log_options, add_threads_option, epilog, subcommand)
from .cli_runner import HandlerResult, run_command
from .constants import BUNDLE_ENV, DETECTOR_ENV, EXIT_FAILURE, EXIT_OK, PUBLIC_KEY_ENV, file_form
from .errors import FaceLiveError

log = logging.getLogger("facelivenet.edge_runtime.cli")

PROG = "facelive"


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("facelivenet")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


# --------------------------------------------------------------------------- inspect


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "inspect", "show and check a model bundle's manifest", """\
            Read BUNDLE/manifest.json, validate it against the schema and check
            every model file's sha256 (unless --no-verify). Prints a summary, or
            the whole manifest as one JSON object with --json. A bundle whose
            files were modified or corrupted is refused with a non-zero exit.
            The summary ends with the session's position and timing defaults
            (SessionSettings: the target ovals, the random rest, the reaction
            bound; facelive auth --positions/--timing change them).

            --device also shows which file the runtime runs on THIS device and
            why: every file is self-checked here and the passing ones timed
            (cached per bundle, CPU and thread count; --rerank measures again).
            With --json the choice is the manifest's extra key "device".""",
        ["facelive inspect                 # the shipped default bundle",
         "facelive inspect bundle/",
         "facelive inspect bundle/ --json > manifest.json",
         "facelive inspect bundle/ --no-verify   # schema only, skip hashing",
         "facelive inspect --device        # the file this CPU runs, and why",
         "facelive inspect --rerank --threads 2   # time the files again, at 2 threads"])
    p.add_argument("bundle", metavar="BUNDLE", type=Path, nargs="?",
                   help=f"bundle folder (holds manifest.json; default: ${BUNDLE_ENV}, else the shipped one)")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the model files")
    p.add_argument("--public-key", metavar="PEM", help="also require a valid signature by this Ed25519 key "
                   f"(default: ${PUBLIC_KEY_ENV})")
    p.add_argument("--device", action="store_true", help="also rank the files on this device: which one runs, and why")
    p.add_argument("--rerank", action="store_true", help="with --device (implied): time the files again, ignoring "
                   "the cached ranking")
    add_threads_option(p)  # with --device: the thread count the files are ranked at
    add_json_flag(p)
    p.set_defaults(handler=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> HandlerResult:
    from . import signing
    from .bundle import Bundle, resolve_bundle_dir
    from .manifest import load_manifest
    from .options import SessionSettings
    from .step_plan import describe as describe_plan

    if args.bundle is None:
        args.bundle = resolve_bundle_dir(None)
    manifest = load_manifest(args.bundle, verify_files=not args.no_verify, public_key=args.public_key)
    log.info("%s: manifest valid, %d file(s)%s", args.bundle, len(manifest.files),
             "" if args.no_verify else ", sha256 verified")
    d = manifest.to_dict()
    key = signing.resolve_public_key(args.public_key)
    signed = (Path(args.bundle) / signing.SIGNATURE_NAME).is_file()
    status = ("verified with " + str(key)) if key else ("present, not checked (no --public-key)" if signed else "none")
    text = _manifest_summary(d, args.bundle, verified=not args.no_verify) + f"\nsignature  {status}"
    settings = SessionSettings()  # positions and timing are the session's (SessionSettings), not the bundle's: the
    text += "\n" + describe_plan(settings.positions, settings.timing)  # text shows their defaults, --json stays the manifest
    if args.device or args.rerank:
        from .face_model import FaceModel

        ranking = FaceModel(Bundle(Path(args.bundle), manifest), threads=args.threads, rerank=args.rerank).ranking
        d = {**d, "device": ranking.to_dict()}
        text += "\n" + _ranking_summary(ranking)
    return EXIT_OK, d, text


def _ranking_summary(ranking) -> str:
    """The device ranking as lines: CPU, each file's result, the choice and why."""
    lines = [f"device     {ranking.cpu['family']} ({ranking.cpu['model']}), {ranking.threads} thread(s)"
             + (f", cached ranking {ranking.cache_file}" if ranking.cached else "")]
    for t in ranking.trials:
        mark = "*" if t.path == ranking.chosen else " "
        result = f"{t.median_ms:.2f} ms" if t.passed and t.median_ms is not None else ("ok" if t.passed else t.reason)
        lines.append(f"  {mark} {t.path:28s} {result}")
    lines.append(f"runs       {ranking.chosen}: {ranking.why}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- keygen, sign


def _add_keygen(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "keygen", "make an Ed25519 key pair for signing bundles", """\
            Write DIR/NAME.key (the private key, mode 0600: keep it off the
            devices) and DIR/NAME.pub (the public key the devices hold). Refuses
            to overwrite an existing key. Needs: pip install "facelivenet[sign]".""",
        ["facelive keygen --out keys/",
         "facelive sign bundle/ --key keys/deployer.key"])
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the two key files")
    p.add_argument("--name", default="deployer", help="file name stem (default deployer)")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_keygen)


def _cmd_keygen(args: argparse.Namespace) -> HandlerResult:
    from .signing import generate_keypair

    out = generate_keypair(args.out, args.name)
    return EXIT_OK, out, (f"private key {out['private_key']} (keep it secret)\n"
                          f"public key  {out['public_key']} (fingerprint {out['fingerprint']})")


def _add_sign(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "sign", "sign a bundle's manifest so devices refuse edited copies", """\
            Check BUNDLE (schema and every file's sha256), then sign the exact
            bytes of its manifest.json with an Ed25519 private key and write
            BUNDLE/manifest.sig. A device given the public key (--public-key or
            $FACELIVE_BUNDLE_PUBLIC_KEY) then refuses the bundle if anything in
            the manifest (thresholds included) or, through its hashes, any file
            was changed. Sign again after any re-export.""",
        ["facelive sign bundle/ --key keys/deployer.key",
         "facelive inspect bundle/ --public-key keys/deployer.pub",
         "facelive auth --user alice --bundle bundle/ --public-key keys/deployer.pub"])
    p.add_argument("bundle", metavar="BUNDLE", type=Path, help="bundle folder (holds manifest.json)")
    p.add_argument("--key", type=Path, required=True, metavar="PEM", help="the Ed25519 private key (facelive keygen)")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_sign)


def _cmd_sign(args: argparse.Namespace) -> HandlerResult:
    from .signing import sign_bundle

    out = sign_bundle(args.bundle, args.key)
    return EXIT_OK, out, f"signed {args.bundle}/manifest.json with key {out['key_fingerprint']} -> {out['path']}"


def _manifest_summary(d: dict[str, Any], bundle: Path, verified: bool) -> str:
    pre, out, thr = d["preprocess"], d["outputs"], d["thresholds"]
    lines = [
        f"bundle     {bundle}",
        f"model      {d['model_name']} {d['model_version']} (schema {d['schema_version']}, "
        f"checkpoint sha256 {d['checkpoint_sha256'][:12]})",
        f"input      {pre['input_size']}x{pre['input_size']} {pre['colour']} {pre['layout']}, "
        f"mean {pre['mean']} std {pre['std']}",
        f"outputs    {out['embedding']} [{out['embedding_dim']}"
        f"{', L2-normalised' if out['embedding_normalized'] else ''}], "
        f"{out['expression_logits']} [{len(out['expression_labels'])}]: {', '.join(out['expression_labels'])}",
        f"thresholds cosine {thr['verification_cosine']} at FAR {thr['target_far']}, "
        f"expression p {thr['expression_probability']} (calibrated on {thr['calibrated_on']})",
        f"files      {len(d['files'])} ({'sha256 verified' if verified else 'NOT verified: --no-verify'})",
    ]
    for f in d["files"]:
        default = "  <- default" if f["path"] == d.get("default_file") else ""
        lines.append(f"  {f['format']:<7}{file_form(f['precision'], f.get('variant')):<18}{f['size_bytes']:>12,d} B  "
                     f"{f['sha256'][:12]}  {f['path']}{default}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- detect


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "detect", "detect faces (box, five landmarks, score) in images", """\
            Run the YuNet face detector on each image (a folder stands for the
            images in it, in name order) and report the faces found: box
            (x, y, w, h), five landmarks (eyes, nose tip, mouth corners, in image
            order) and score, best first. With --save-crops, also write each
            face aligned to the model's landmark template, as the model sees it.

            The detector file comes from --detector, else $FACELIVE_DETECTOR,
            else --bundle; it is never downloaded. Exits 1 if any image could
            not be read (the others are still reported).""",
        ["facelive detect photo.jpg",
         "facelive detect --detector yunet_s_640_640.onnx faces/ --json",
         "facelive detect a.jpg b.png --save-crops crops/ --size 112 --colour rgb"])
    p.add_argument("images", metavar="IMG", nargs="+", type=Path, help="image files or folders of images")
    add_detector_option(p, default_text=f"${DETECTOR_ENV}, else --bundle's", note="or a folder holding one")
    add_bundle_option(p, "a bundle to find the detector in", type=Path)
    p.add_argument("--score-threshold", type=float, default=0.6, metavar="P",
                   help="minimum detector score, 0..1 (default 0.6)")
    p.add_argument("--save-crops", metavar="DIR", type=Path, help="write aligned face crops (PNG) into DIR")
    p.add_argument("--size", type=int, default=112, metavar="S", help="crop side in pixels (default 112)")
    p.add_argument("--colour", choices=("gray", "rgb"), default="gray",
                   help="crop colour mode, as the model's preprocessing (default gray)")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_detect)


def _face_dict(face: Any) -> dict[str, Any]:
    return {
        "box": [round(float(v), 2) for v in face.box],
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        "score": round(float(face.score), 4),
    }


def _cmd_detect(args: argparse.Namespace) -> HandlerResult:
    import cv2

    from .bundle import open_bundle
    from .detection import YuNetDetector, resolve_detector_path
    from .imageio import read_image
    from .preprocess import PreprocessConfig, face_crop
    from .sources import expand_image_paths

    if not 0.0 <= args.score_threshold <= 1.0:
        raise CommandLineError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    cfg = None
    if args.save_crops is not None:
        try:
            cfg = PreprocessConfig(input_size=args.size, colour=args.colour)
        except ValueError as exc:
            raise CommandLineError(f"--size/--colour: {exc}") from exc
        try:
            args.save_crops.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandLineError(f"cannot create --save-crops folder {args.save_crops}: {exc}") from exc
    images = expand_image_paths(args.images)
    detector_path = (open_bundle(args.bundle).detector(args.detector) if args.bundle is not None
                     else resolve_detector_path(args.detector))
    detector = YuNetDetector(detector_path, score_threshold=args.score_threshold)
    log.info("detector %s, %d image(s)", detector_path, len(images))

    results: list[dict[str, Any]] = []
    failures: list[str] = []
    used_names: set[str] = set()
    for path in images:
        entry: dict[str, Any] = {"path": str(path)}
        try:
            image = read_image(path)
        except FaceLiveError as exc:
            entry["error"] = str(exc)
            failures.append(str(exc))
            log.warning("%s", exc)
            results.append(entry)
            continue
        faces = detector.detect(image)
        entry.update(width=int(image.shape[1]), height=int(image.shape[0]), num_faces=len(faces),
                     faces=[_face_dict(f) for f in faces])
        if cfg is not None:
            stem = path.stem
            n = 1
            while stem in used_names:  # the same file name in two folders
                n += 1
                stem = f"{path.stem}-{n}"
            used_names.add(stem)
            crops = []
            for i, face in enumerate(faces):
                crop = face_crop(image, cfg, face.landmarks)
                if cfg.colour == "rgb":
                    crop = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
                out = args.save_crops / f"{stem}_face{i}.png"
                if not cv2.imwrite(str(out), crop):
                    raise CommandLineError(f"cannot write crop {out}")
                crops.append(str(out))
            entry["crops"] = crops
        results.append(entry)

    payload: dict[str, Any] = {
        "detector": str(detector_path),
        "images": results,
        "num_images": len(results),
        "num_faces": sum(r.get("num_faces", 0) for r in results),
    }
    if cfg is not None:
        payload["crop_config"] = cfg.to_dict()
    text = "\n".join(_detect_line(r) for r in results)
    if failures:
        payload["error"] = f"{len(failures)} of {len(results)} image(s) could not be read; first: {failures[0]}"
        return EXIT_FAILURE, payload, text
    return EXIT_OK, payload, text


def _detect_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['path']}: ERROR {r['error']}"
    lines = [f"{r['path']}: {r['num_faces']} face(s) in {r['width']}x{r['height']}"]
    for i, f in enumerate(r["faces"]):
        x, y, w, h = f["box"]
        lines.append(f"  face {i}: box x={x:.0f} y={y:.0f} w={w:.0f} h={h:.0f}  score {f['score']:.3f}")
    for c in r.get("crops", []):
        lines.append(f"  crop {c}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- serve, keys


def _add_serve(sub: argparse._SubParsersAction) -> None:
    """``facelive serve`` (facelivenet.server.cli: FastAPI and uvicorn are imported when it runs)."""
    from ..server.cli import add_serve

    add_serve(sub)


def _add_keys(sub: argparse._SubParsersAction) -> None:
    """``facelive keys`` (facelivenet.server.cli)."""
    from ..server.cli import add_keys

    add_keys(sub)


# --------------------------------------------------------------------------- registry

# Subcommands, in the order ``facelive --help`` lists them. The model-running
# ones live in cli_runtime and share --bundle, --format, --precision, --threads
# (ARCHITECTURE.md, "Commands", has their JSON contracts).
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    cli_runtime.add_enroll,
    cli_runtime.add_auth,
    cli_runtime.add_verify,
    cli_runtime.add_calibrate,
    cli_runtime.add_users,
    _add_inspect,
    _add_detect,
    _add_keygen,
    _add_sign,
    _add_serve,
    _add_keys,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.dedent(
            """\
            Edge face authentication with FaceLiveNet: one small CNN gives an
            identity embedding and expression probabilities for the same face.
            Runs on numpy + OpenCV + onnxruntime, without torch."""
        ),
        epilog=epilog(
            "facelive enroll --user alice alice_photos/",
            "facelive auth --user alice --source 0            # camera 0",
            "facelive verify a.jpg b.jpg --json",
            "facelive inspect bundle/ --json",
            "facelive COMMAND --help       # options of one command",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_log_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelive`` console script; returns the exit code."""
    return run_command(PROG, build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
