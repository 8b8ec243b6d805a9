"""Stage 1 loss of FaceLiveNet (paper eq. 1-7): softmax + alpha * class-wise triplet loss.

Our reading of the class-wise triplet loss, per sample i of class y_i in a batch
whose other present classes are J_i (k_i = |J_i|):

    D_intra(i) = || f_i - c_{y_i} ||^2                      (to its own class centre)
    D_psi(i)   = sum_{j in J_i} || f_i - c_j ||^2            (to the other classes' centres)
    Lc(i)      = max(k_i * D_intra(i) + beta - theta * D_psi(i), 0)
    Lc         = mean_i Lc(i)

i.e. k_i triplets (sample, own centre, another centre) summed, with margin beta
and the inter-class term weighted by theta. Centres are not learnt by gradient:
after each step they move toward their samples with rate gamma (eq. 6-7):

    delta_c_j = sum_{i: y_i = j} (c_j - f_i) / (1 + n_j)
    c_j      <- c_j - gamma * delta_c_j

The total Stage 1 loss is L1 = CE(identity logits) + alpha * Lc, plus, when a
teacher is configured, teacher_weight * mean(1 - cos(embedding, teacher descriptor))
over the images the teacher could describe (an addition; the paper's terms stay as they are).
Rows labelled -1 (``data.distill_root``: faces of no known class) take part in the teacher
term only: no softmax, no triplet, no centre update. With ``relation_weight`` a second teacher
term compares the batch's pairwise cosines (:func:`relation_loss`): it asks the student to
tell the same faces apart as the teacher does, whatever the directions of single embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassWiseTripletLoss(nn.Module):
    """Class-wise triplet loss with centres kept as a buffer (saved in checkpoints)."""

    def __init__(self, num_classes: int, feat_dim: int, beta: float = 10.0, theta: float = 0.5, centre_rate: float = 0.5):
        super().__init__()
        self.beta, self.theta, self.centre_rate = beta, theta, centre_rate
        self.register_buffer("centres", torch.zeros(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        centres = self.centres.to(features.dtype)
        present = torch.unique(labels)
        # squared distance of every sample to every centre present in the batch: (N, P)
        dist = (features.unsqueeze(1) - centres[present].unsqueeze(0)).pow(2).sum(-1)
        own = labels.unsqueeze(1) == present.unsqueeze(0)
        d_intra = (dist * own).sum(1)
        d_psi = (dist * ~own).sum(1)
        k = float(len(present) - 1)
        return F.relu(k * d_intra + self.beta - self.theta * d_psi).mean()

    @torch.no_grad()
    def update_centres(self, features: torch.Tensor, labels: torch.Tensor, reduce=None) -> None:
        """Eq. 6-7. ``reduce`` sums tensors across processes (DDP) so every rank moves identically."""
        labelled = labels >= 0
        feats, labels = features.detach().float()[labelled], labels[labelled]
        sums = torch.zeros_like(self.centres).index_add_(0, labels, feats)
        counts = torch.zeros(len(self.centres), device=feats.device).index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
        if reduce is not None:
            sums, counts = reduce(sums), reduce(counts)
        seen = counts > 0
        delta = (counts[seen, None] * self.centres[seen] - sums[seen]) / (1.0 + counts[seen, None])
        self.centres[seen] -= self.centre_rate * delta


def distillation_loss(embedding: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean(1 - cos) between student embeddings and teacher descriptors; all-zero teacher rows are ignored."""
    valid = teacher.abs().sum(1) > 0
    if not valid.any():
        return embedding.sum() * 0.0
    cos = F.cosine_similarity(embedding[valid].float(), teacher[valid].float(), dim=1)
    return (1.0 - cos).mean()


def relation_loss(embedding: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the pairwise cosines (off the diagonal) of student and teacher, over the
    rows the teacher described; zero when fewer than two are."""
    valid = teacher.abs().sum(1) > 0
    if int(valid.sum()) < 2:
        return embedding.sum() * 0.0
    s = F.normalize(embedding[valid].float(), dim=1)
    t = F.normalize(teacher[valid].float(), dim=1)
    n = len(s)
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return ((s @ s.T - t @ t.T)[off] ** 2).mean()


class Stage1Loss(nn.Module):
    """L1 = softmax cross-entropy over identities + alpha * class-wise triplet loss (+ optional teacher term)."""

    def __init__(self, num_classes: int, feat_dim: int, alpha: float = 1e-4, beta: float = 10.0,
                 theta: float = 0.5, centre_rate: float = 0.5, label_smoothing: float = 0.0,
                 teacher_weight: float = 0.0, relation_weight: float = 0.0):
        super().__init__()
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.teacher_weight = teacher_weight
        self.relation_weight = relation_weight
        self.triplet = ClassWiseTripletLoss(num_classes, feat_dim, beta, theta, centre_rate)

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        labelled = labels >= 0  # teacher-only rows (label -1) train the teacher term alone
        if labelled.any():
            ce = F.cross_entropy(logits[labelled].float(), labels[labelled], label_smoothing=self.label_smoothing)
            lc = self.triplet(features[labelled].float(), labels[labelled])
        else:
            ce = lc = logits.sum() * 0.0
        total = ce + self.alpha * lc
        parts = {"softmax": float(ce.detach()), "triplet": float(lc.detach())}
        if teacher is not None and self.teacher_weight:
            distill = distillation_loss(F.normalize(features.float(), dim=1), teacher)
            total = total + self.teacher_weight * distill
            parts["teacher"] = float(distill.detach())
        if teacher is not None and self.relation_weight:
            relation = relation_loss(features, teacher)
            total = total + self.relation_weight * relation
            parts["relation"] = float(relation.detach())
        return total, {"loss": float(total.detach()), **parts}


class ExpressionLoss(nn.Module):
    """Stage 2 with a trainable shared stem: cross-entropy over expressions + ``keep_weight`` x mean(1 - cos)
    between Branch 1's embedding and the one recorded before the stage (so identity stays where it was)."""

    def __init__(self, keep_weight: float):
        super().__init__()
        self.keep_weight = keep_weight

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                reference: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if reference is None:
            raise ValueError("ExpressionLoss needs the reference embeddings (the dataset's targets)")
        ce = F.cross_entropy(logits.float(), labels)
        keep = distillation_loss(features.float(), reference)
        total = ce + self.keep_weight * keep
        return total, {"loss": float(total.detach()), "softmax": float(ce.detach()), "identity_keep": float(keep.detach())}
