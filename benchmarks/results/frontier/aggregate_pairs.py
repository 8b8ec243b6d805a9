"""Aggregate calibration pairs on the shipped bundle, seed-1 suite setup (the figures of the README's KM/UY note):
per held-out subject the FAR-0.005 threshold and the lowest genuine stills; the top impostor pairs.
Run from the repository root: OMP_NUM_THREADS=1 python benchmarks/results/frontier/aggregate_pairs.py"""
import os
from pathlib import Path
import numpy as np
from facelivenet.benchmarks.attacks import calibration
from facelivenet.benchmarks.attacks.suite import SuiteConfig, prepare_suite
from facelivenet.edge_runtime.api import open_pipeline, RuntimeOptions
from facelivenet.edge_runtime import metrics
cfg = SuiteConfig(data=Path(os.environ.get('FACELIVE_DATA', '../shared/data')) / 'jaffe', seed=1)
p = prepare_suite(cfg, open_pipeline(RuntimeOptions(threads=1)))
emb, T = p.stills.embeddings, p.templates
top = sorted(((float(emb[n] @ T[u.name]), u.name, v.name) for u in p.subjects for v in p.subjects if v is not u
              for n in v.neutral_all if n in emb), reverse=True)[:3]
print('top impostor (template owner, still owner):', [(round(a, 4), u, v) for a, u, v in top])
for s in p.subjects:
    sc, lab = calibration._pairs([u for u in p.subjects if u is not s], p.stills, T, cfg.expressions)['aggregate']
    sc, lab = np.array(sc), np.array(lab)
    print(s.name, 'thr %.4f' % metrics.tar_at_far(sc, lab, 0.005).threshold, 'genuine lowest', np.round(np.sort(sc[lab])[:2], 4))
