"""The liveness attack suite (``facelive-bench attacks``): simulated sessions from real JAFFE images.

Modules: :mod:`data` (subjects and the enrollment split), :mod:`render`
(camera-like frames with jitter), :mod:`memo` (detector and model caches),
:mod:`actors` (who is in front of the camera, and how smoothly its face
changes), :mod:`scenarios` (the session types and session models),
:mod:`calibration` (enrollment, leave-one-subject-out thresholds at stated
rates), :mod:`identity` (the model's embedding or the dlib diagnostic),
:mod:`simulate` (sessions through the runtime), :mod:`report` (APCER/BPCER,
DET, report folder), :mod:`suite` (all of it), :mod:`cli` (``main(argv)``).
THREAT_MODEL.md says what the liveness check stops and what it does not.
"""
