import torch

from facelivenet.training.losses import ClassWiseTripletLoss, Stage1Loss


def test_triplet_loss_matches_hand_computation():
    loss = ClassWiseTripletLoss(num_classes=3, feat_dim=2, beta=10.0, theta=0.5, centre_rate=0.5)
    loss.centres.copy_(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]))
    feats = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    labels = torch.tensor([0, 1])
    # present classes {0, 1}: k = 1.
    # sample 0: D_intra = 1, D_psi = |(1,0)-(3,0)|^2 = 4   -> 1*1 + 10 - 0.5*4 = 9
    # sample 1: D_intra = 1, D_psi = |(3,1)-(0,0)|^2 = 10  -> 1*1 + 10 - 0.5*10 = 6
    assert torch.isclose(loss(feats, labels), torch.tensor(7.5))


def test_triplet_loss_hinge_is_zero_when_classes_are_far_apart():
    loss = ClassWiseTripletLoss(num_classes=2, feat_dim=1, beta=1.0, theta=1.0)
    loss.centres.copy_(torch.tensor([[0.0], [10.0]]))
    assert loss(torch.tensor([[0.0], [10.0]]), torch.tensor([0, 1])) == 0


def test_centre_update_follows_eq_6_7():
    loss = ClassWiseTripletLoss(num_classes=2, feat_dim=2, centre_rate=0.5)
    feats = torch.tensor([[2.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    labels = torch.tensor([0, 0, 1])
    loss.update_centres(feats, labels)
    # class 0: delta = ((0-2) + (0-4)) / (1 + 2) = -2 -> c = 0 - 0.5 * -2 = 1
    # class 1: delta = (0-6) / (1 + 1) = -3 in y -> c = (0, 1.5)
    torch.testing.assert_close(loss.centres, torch.tensor([[1.0, 0.0], [0.0, 1.5]]))


def test_stage1_loss_is_softmax_plus_alpha_triplet():
    crit = Stage1Loss(num_classes=3, feat_dim=2, alpha=0.1, beta=10.0, theta=0.5)
    crit.triplet.centres.copy_(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    feats = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    labels = torch.tensor([0, 1])
    total, parts = crit(logits, feats, labels)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.isclose(total, ce + 0.1 * 7.5)
    assert abs(parts["triplet"] - 7.5) < 1e-6
