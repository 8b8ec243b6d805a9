"""Evaluation protocols and metrics (LFW View 2, FER2013, CK+, JAFFE authentication).

Pure numpy, no torch: ``lfw_protocol`` (pairs.txt / people.txt), ``auth_protocol``
(the JAFFE face-authentication pairs), ``metrics`` (k-fold verification accuracy,
TAR@FAR, ROC, confusion matrix, the paper's Acc_verif / Acc_expre / Acc_live / Acc_g),
``plots`` (ROC and confusion-matrix PNGs; matplotlib imported lazily).

With torch (``facelive-train evaluate``): ``evaluate`` (task selection, skips,
report folder), ``runner`` (checkpoint loading, face alignment, batched forward
passes), and one module per task: ``lfw_eval``, ``fer2013_eval``, ``ckplus_eval``,
``auth_eval``. For distillation teachers: ``teacher_eval`` (a teacher's LFW 10-fold,
JAFFE all pairs and ms/face) and ``teacher_term`` (how closely a checkpoint follows its
teacher on faces it never trained on).
"""
