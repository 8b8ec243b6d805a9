"""Training: the FaceLiveNet model, the paper's losses and two-stage training (needs torch)."""
