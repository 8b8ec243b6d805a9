"""``facelive-bench``: latency, size, memory, parity and accuracy of a model bundle, and peer comparisons.

Modules, one job each: ``cli`` (the command), ``run`` (one benchmark run),
``latency`` (the timing harness), ``jobs`` / ``worker`` (one measurement in a
fresh process), ``bundle_rows`` (bundle files and the torch model),
``accuracy`` (parity and task accuracy on real faces), ``faces`` / ``inputs``
(real faces and timing inputs), ``machine`` (fp32 GEMM peak, achieved
fraction), ``resources`` (RSS, threads, CPU model), ``peers`` (peer networks
from their papers, their ONNX files, dlib), ``pipeline`` (the per-frame
runtime stages' slot), ``report`` / ``report_files`` / ``plots`` (JSON,
Markdown, PNG). ``main_job`` is the README's main job.
"""
