"""``facelive`` subcommands that run the model: verify, calibrate, enroll, auth, users.

They share the model options (``--bundle``, ``--format``, ``--precision``,
``--threads``, ``--detector``); handlers follow :mod:`cli`'s conventions and
return ``(exit_code, payload, text)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import reasons
from .cli_common import (CommandLineError, add_challenge_options, add_json_flag, add_model_options, add_plan_options, count,
                         finite_float, positive_float, runtime_options, session_settings, subcommand)
from .constants import DEFAULT_DB, DEFAULT_FPS, EXIT_OK, EXIT_REJECTED
from .reasons import Decision

def build_pipeline(args: argparse.Namespace, detect_every: int = 1):
    """The FacePipeline the model options describe (through :func:`.api.open_pipeline`)."""
    from .api import open_pipeline
    from .options import SessionSettings

    return open_pipeline(runtime_options(args, detect_every=detect_every, session=SessionSettings()))


# ------------------------------------------------------------------ verify


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "verify", "are two face images the same person? (or score a CSV of pairs)", """\
        Compare the faces of IMG1 and IMG2 (the face nearest each image's centre)
        by the cosine of their embeddings, against the bundle's verification
        threshold (or --threshold). With --pairs CSV (header img1,img2[,label];
        label 1 = same person, 0 = different; relative paths are relative to the
        CSV), score every pair; with labels, also the accuracy at the threshold
        and the TAR at each --far.""",
        ["facelive verify a.jpg b.jpg", "facelive verify --pairs pairs.csv --far 1e-3,1e-2 --json"])
    p.add_argument("images", nargs="*", metavar="IMG", type=Path, help="two images (or none with --pairs)")
    p.add_argument("--pairs", metavar="CSV", type=Path, help="CSV of pairs: img1,img2[,label]")
    p.add_argument("--threshold", type=finite_float, metavar="COS", help="cosine threshold (default: the bundle's)")
    p.add_argument("--far", default="1e-3", metavar="LIST", help="FARs for TAR@FAR with labelled pairs (default 1e-3)")
    add_model_options(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_verify)


def _parse_fars(text: str) -> list[float]:
    try:
        fars = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise CommandLineError(f"--far must be numbers like 1e-3,1e-2, got {text!r}") from exc
    if not fars or any(not 0 < f < 1 for f in fars):
        raise CommandLineError(f"--far values must be in (0, 1), got {text!r}")
    return fars


def cmd_verify(args: argparse.Namespace):
    from .verification import Pair, pair_metrics, read_pairs_csv, score_pairs

    fars = _parse_fars(args.far)
    if args.pairs is None and len(args.images) != 2:
        raise CommandLineError("give two images (facelive verify IMG1 IMG2) or --pairs CSV")
    if args.pairs is not None and args.images:
        raise CommandLineError("give either two images or --pairs CSV, not both")
    pairs = read_pairs_csv(args.pairs) if args.pairs else [Pair(args.images[0], args.images[1], None)]
    from .options import bundle_or

    pipeline = build_pipeline(args)
    threshold = bundle_or(args.threshold, pipeline.model.manifest, "verification_cosine")
    scores, errors = score_pairs(pipeline, pairs, progress=_progress_printer(args, "verify"))
    if args.pairs is None:
        if scores[0] is None:
            raise CommandLineError(errors[0])
        s = scores[0]
        payload = {"score": round(s, 6), "match": s >= threshold, "threshold": threshold,
                   "model": pipeline.model.description}
        text = f"{'MATCH' if s >= threshold else 'NO MATCH'}: cosine {s:.4f} (threshold {threshold:.4f})"
        return EXIT_OK, payload, text
    payload: dict[str, Any] = {"pairs": len(pairs), "scored": sum(s is not None for s in scores),
                               "threshold": threshold, "model": pipeline.model.description,
                               "scores": [None if s is None else round(s, 6) for s in scores]}
    if errors:
        payload["failed"] = errors
    labelled = [(s, p.label) for s, p in zip(scores, pairs) if s is not None and p.label is not None]
    lines = [f"{payload['scored']}/{len(pairs)} pair(s) scored, threshold {threshold:.4f}"]
    if labelled:
        m = pair_metrics([s for s, _ in labelled], [y for _, y in labelled], threshold, fars)
        payload.update(accuracy=m["accuracy"], tar_at_far=m["tar_at_far"])
        if "note" in m:
            payload["note"] = m["note"]
        lines.append(f"accuracy {m['accuracy']:.4f} on {len(labelled)} labelled pair(s)")
        lines += [f"TAR {v:.4f} at FAR {k}" for k, v in m["tar_at_far"].items() if v is not None]
    lines += [f"failed: {e}" for e in errors[:10]]
    if payload["scored"] == 0:
        payload["error"] = f"no pair could be scored; first: {errors[0]}"
        return 1, payload, "\n".join(lines)
    return EXIT_OK, payload, "\n".join(lines)


def _progress_printer(args: argparse.Namespace, what: str):
    import logging
    import sys

    if getattr(args, "json", False) and not sys.stderr.isatty():
        return None
    log = logging.getLogger("facelivenet.edge_runtime.cli")
    step = [0]

    def show(i: int, n: int) -> None:
        if n < 20:
            return
        if sys.stderr.isatty():
            print(f"\r{what}: {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
        elif i * 10 // n > step[0]:
            step[0] = i * 10 // n
            log.warning("%s: %d/%d", what, i, n)

    return show


# --------------------------------------------------------------- calibrate


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "calibrate", "choose the verification threshold for a target FAR on your labelled pairs", """\
        Score labelled pairs (CSV header img1,img2,label) and choose the lowest
        cosine threshold whose false accept rate on the impostor pairs is at
        most --far. Writes a COPY of the bundle to --out with that threshold
        in its manifest (the model files are copied unchanged; their hashes
        still hold). Use pairs from the people and cameras you deploy on:
        a threshold only means what its pairs mean. At least 1/FAR impostor
        pairs are needed for the FAR to be measurable.""",
        ["facelive calibrate --pairs pairs.csv --far 1e-3 --out bundle_calibrated/",
         "facelive calibrate --bundle b/ --pairs p.csv --far 1e-2 --expression-threshold 0.4 --out b2/ --json"])
    p.add_argument("--pairs", metavar="CSV", type=Path, required=True, help="labelled pairs: img1,img2,label")
    p.add_argument("--far", type=finite_float, default=1e-3, help="target false accept rate (default 1e-3)")
    p.add_argument("--out", metavar="BUNDLE", type=Path, required=True, help="where to write the calibrated copy")
    p.add_argument("--expression-threshold", type=finite_float, metavar="P",
                   help="also set the expression probability threshold (0..1)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_model_options(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace):
    from . import metrics
    from .verification import calibrated_manifest, read_pairs_csv, score_pairs, write_calibrated_bundle

    if not 0 < args.far < 1:
        raise CommandLineError(f"--far must be in (0, 1), got {args.far}")
    if args.expression_threshold is not None and not 0 < args.expression_threshold <= 1:
        raise CommandLineError(f"--expression-threshold must be in (0, 1], got {args.expression_threshold}")
    pairs = read_pairs_csv(args.pairs)
    if any(p.label is None for p in pairs):
        raise CommandLineError(f"{args.pairs} has no label column: calibration needs img1,img2,label")
    pipeline = build_pipeline(args)
    scores, errors = score_pairs(pipeline, pairs, progress=_progress_printer(args, "calibrate"))
    kept = [(s, p.label) for s, p in zip(scores, pairs) if s is not None]
    genuine = sum(1 for _, y in kept if y == 1)
    impostor = len(kept) - genuine
    if genuine == 0 or impostor == 0:
        raise CommandLineError(f"calibration needs genuine and impostor pairs with faces; got {genuine} and {impostor}")
    r = metrics.tar_at_far([s for s, _ in kept], [y for _, y in kept], args.far)
    manifest = calibrated_manifest(pipeline.model.manifest, r.threshold, args.far, args.pairs, genuine, impostor,
                                   r.tar, args.expression_threshold)
    out = write_calibrated_bundle(pipeline.model.bundle_dir, args.out, manifest, args.force)
    payload = {"bundle": str(out), "threshold": r.threshold, "far": r.far, "target_far": args.far, "tar": r.tar,
               "genuine_pairs": genuine, "impostor_pairs": impostor, "failed": errors,
               "expression_threshold": manifest.thresholds.expression_probability}
    if impostor * args.far < 1:
        payload["warning"] = (f"only {impostor} impostor pairs: FAR {args.far:g} cannot be measured (needs >= "
                              f"{int(1 / args.far)}); the threshold rejects every impostor seen")
    text = (f"threshold {r.threshold:.4f}: TAR {r.tar:.4f} at FAR {r.far:.4g} (target {args.far:g}) on {genuine} "
            f"genuine / {impostor} impostor pairs -> {out}" + (f"\nwarning: {payload['warning']}" if "warning" in payload else ""))
    return EXIT_OK, payload, text


# ------------------------------------------------------------------ enroll


def add_enroll(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "enroll", "enroll a user from face images (quality-gated) into the template database", """\
        Each image (a folder stands for its images in name order) must show
        exactly one face passing the quality gates (size, sharpness, pose,
        brightness); the others are listed with a reason. The template is the
        normalised mean of the accepted embeddings and replaces the user's
        previous template for this model, in one transaction. The database is
        an SQLite file (mode 0600) created when missing.""",
        [f"facelive enroll --db {DEFAULT_DB} --user alice alice/", "facelive enroll --user bob a.jpg b.jpg --json"])
    p.add_argument("images", nargs="+", metavar="IMG_OR_DIR", help="face images or folders of images")
    p.add_argument("--db", type=Path, default=Path(DEFAULT_DB), help=f"template database (default ./{DEFAULT_DB})")
    p.add_argument("--user", required=True, help="user id (1-128 printable characters)")
    p.add_argument("--min-images", type=count(1, 10_000), default=1, metavar="N",
                   help="refuse (store nothing) with fewer usable images (default 1)")
    add_model_options(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_enroll)


def cmd_enroll(args: argparse.Namespace):
    from .api import Authenticator
    from .options import SessionSettings
    from .sources import expand_image_paths
    from .store import validate_user_id

    validate_user_id(args.user)
    expand_image_paths(args.images)  # fail on no images before loading anything
    with Authenticator(runtime_options(args, session=SessionSettings())) as auth:
        result = auth.enroll(args.user, args.images, args.min_images)
    payload = result.to_dict()
    lines = [f"enrolled {result.user!r}: {result.images_used} image(s) used, {len(result.rejected)} rejected ({args.db})"]
    lines += [f"  rejected {r['path']}: {r['reason']} ({r['detail']})" for r in result.rejected]
    return EXIT_OK, payload, "\n".join(lines)


# -------------------------------------------------------------------- auth


def add_auth(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "auth", "authenticate a user: identity + a random expression challenge, on live frames", """\
        Draw a random challenge from --challenge (default happy,surprise; neutral
        comes before each expression), then judge the frames of --source: exactly
        one face, the same face throughout, identity from the whole session (the
        face at rest against the template, every frame close to the previous one
        and above a floor), and each asked expression, risen over the person's
        own face at rest, held for --hold-frames frames before its --step-timeout.
        With --positions on (the default) every neutral step also draws a target
        oval the face must move into and keep for the expression that follows;
        with --timing on (the default) each neutral step holds the face at rest
        for a random 0.6-2.0 s before the next prompt, and an expression sooner
        than --min-reaction after its prompt rejects (EARLY_RESPONSE). Prints the
        decision with reason codes, per-step timings and the evidence; exits 0
        on accept, 4 on reject.

        --source: a camera index (0), a video file, a folder of frames (read in
        name order at --fps) or frame files. A recording cannot answer a live
        prompt: a video, a folder or frame files can only be judged with
        --positions off --timing off --fixed-order (a replay judged that way
        proves nothing about liveness). --fixed-order and --seed exist for tests
        and evaluation; a deployment draws the challenge, places and times unseen.""",
        ["facelive auth --user alice --source 0", "facelive auth --db users.db --user alice --source 0 --json",
         "facelive auth --user alice --source frames/ --fps 10 --positions off --timing off --fixed-order "
         "--challenge happy,surprise"])
    p.add_argument("--db", type=Path, default=Path(DEFAULT_DB), help=f"template database (default ./{DEFAULT_DB})")
    p.add_argument("--user", required=True, help="the enrolled user to authenticate")
    p.add_argument("--source", nargs="+", required=True, metavar="SRC",
                   help="camera index, video file, folder of frames, or frame files")
    p.add_argument("--fps", type=positive_float, default=DEFAULT_FPS,
                   help=f"frame rate of a folder or list of frames (default {DEFAULT_FPS:g})")
    add_challenge_options(p, rules=True)
    add_plan_options(p)
    p.add_argument("--detect-every", type=count(1, 1000), default=1, metavar="N",
                   help="full-frame detection every N frames, window re-detection in between (default 1)")
    p.add_argument("--max-frames", type=count(1, 10**9), metavar="N", help="stop a camera or video after N frames")
    add_model_options(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_auth)


def identity_summary(ev: dict) -> str:
    """One line of a session's identity evidence (IdentityEvidence.to_dict())."""
    def f(v):
        return "-" if v is None else f"{v:.3f}"
    return (f"aggregate {f(ev.get('aggregate'))} (>= {f(ev.get('aggregate_threshold'))}, "
            f"{ev.get('neutral_frames', 0)} frames at rest), continuity min {f(ev.get('min_continuity'))} "
            f"(>= {f(ev.get('continuity_threshold'))}), score min {f(ev.get('min_score'))} "
            f"(floor {f(ev.get('floor_threshold'))})")


def cmd_auth(args: argparse.Namespace):
    from .api import Authenticator
    from .challenge import distinct_orders
    from .sources import open_source
    from .step_plan import distinct_challenges

    settings = session_settings(args)  # a bad --challenge fails before anything is loaded
    if not args.db.exists():
        raise CommandLineError(f"no template database at {args.db}: enroll the user first (facelive enroll --db {args.db})")
    source = open_source(args.source, fps=args.fps, max_frames=args.max_frames)
    live_only = [flag for flag, on in (("--positions off", settings.positions is not None),
                                       ("--timing off", settings.timing is not None),
                                       ("--fixed-order", not settings.fixed_order)) if on]
    if not getattr(source, "camera", False) and live_only:
        source.close()
        raise CommandLineError(f"{source.describe()} is a recording: it cannot answer a live prompt (where to move, "
                               f"when to react); judge it with {' '.join(live_only)}")
    try:
        with Authenticator(runtime_options(args, detect_every=args.detect_every, session=settings)) as auth:
            result = auth.authenticate(args.user, source)
            model = auth.pipeline.model.description
    finally:
        source.close()
    payload = result.to_dict()
    orders = distinct_orders(settings.challenge_config())
    steps = settings.challenge_config().steps
    payload.update(user=args.user, source=source.describe(), model=model, thresholds=result.thresholds(),
                   challenge_orders=orders,
                   distinct_challenges=distinct_challenges(orders, settings.positions, settings.timing, steps))
    lines = [f"{result.decision.upper()} {args.user!r}: challenge {' -> '.join(['neutral -> ' + e for e in result.challenge])}"]
    for r in result.reasons:
        lines.append(f"  reason {r}: {reasons.describe(r)}")
    if result.detail:
        lines.append(f"  {result.detail}")
    for s in result.steps:
        d = s.to_dict()
        lines.append(f"  step {s.expected:<9} {'passed' if s.passed else 'FAILED':<7} {d['duration_s'] if d['duration_s'] is not None else '-':>6} s"
                     f"  frames {s.frames:>3}  best p {s.best_probability:.2f}"
                     f"  min identity {'-' if s.min_identity is None else f'{s.min_identity:.3f}'}"
                     f"{'' if s.margin is None else f'  rise {s.margin:+.2f}'}"
                     f"{'' if s.target is None else '  target ({cx:.2f}, {cy:.2f})'.format(**s.target)}"
                     f"{'' if s.hold_s is None else f'  rest {s.hold_s:.1f} s'}"
                     f"{'' if s.response_s is None else f'  response {s.response_s:.2f} s'}")
    lines.append(f"  identity: {identity_summary(result.identity)}")
    if result.decision != Decision.ACCEPT:
        payload["message"] = f"rejected: {', '.join(result.reasons)}"
    return (EXIT_OK if result.decision == Decision.ACCEPT else EXIT_REJECTED), payload, "\n".join(lines)


# ------------------------------------------------------------------- users


def add_users(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "users", "list or delete enrolled users", """\
        List the templates in the database (user, model fingerprint, images,
        date), or delete a user's templates and attempt history with --delete.
        Re-enrolling a user simply runs facelive enroll again.""",
        [f"facelive users --db {DEFAULT_DB}", f"facelive users --db {DEFAULT_DB} --delete alice --json"])
    p.add_argument("--db", type=Path, default=Path(DEFAULT_DB), help=f"template database (default ./{DEFAULT_DB})")
    p.add_argument("--delete", metavar="USER", help="delete this user's templates")
    add_json_flag(p)
    p.set_defaults(handler=cmd_users)


def cmd_users(args: argparse.Namespace):
    import datetime as dt

    from .store import TemplateStore

    if not args.db.exists():
        raise CommandLineError(f"no template database at {args.db}")
    with TemplateStore(args.db, create=False) as store:
        if args.delete:
            n = store.delete(args.delete)
            return EXIT_OK, {"deleted": args.delete, "templates": n}, f"deleted {args.delete!r} ({n} template(s))"
        users = store.users()
    rows = [{"user": u.user_id, "model_fingerprint": u.model_fingerprint, "images": u.images,
             "created": dt.datetime.fromtimestamp(u.created, dt.timezone.utc).isoformat(timespec="seconds")}
            for u in users]
    text = "\n".join(f"{r['user']:<24} {r['images']:>3} image(s)  {r['created']}  {r['model_fingerprint'][:48]}"
                     for r in rows) or "no users enrolled"
    return EXIT_OK, {"users": rows}, text
