"""The methods' heads and losses against the papers' definitions, computed independently; MoCo-v3's key gathering
across two real processes (gloo)."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simsiam_collapse.methods import (
    BYOL,
    MoCoV3,
    SimSiam,
    build_method,
    byol_loss,
    byol_projection_head,
    infonce_loss,
    mlp,
    mocov3_projection_head,
    momentum_schedule,
    simsiam_prediction_head,
)


class TinyBackbone(nn.Module):
    "A linear 'backbone' of 12-d inputs, enough to exercise the heads."
    feature_dim = 8
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, self.feature_dim)
    def forward(self, x): return self.fc(x)


def layout(head: nn.Sequential) -> list:
    "Each layer as (kind, in, out, bias or affine)."
    out = []
    for m in head:
        if isinstance(m, nn.Linear): out.append(("linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d): out.append(("bn", m.num_features, m.num_features, m.affine))
        else: out.append((type(m).__name__,))
    return out


def test_mocov3_projector_is_the_papers_two_layer_mlp_with_a_plain_last_bn():
    # MoCo-v3's ResNet projector: Linear(f, 4096)-BN-ReLU-Linear(4096, 256)-BN(no affine), no biases before a BN
    assert layout(mocov3_projection_head(8)) == [("linear", 8, 4096, False), ("bn", 4096, 4096, True), ("ReLU",),
                                                 ("linear", 4096, 256, False), ("bn", 256, 256, False)]


def test_mocov3_defaults_are_the_papers():
    m = MoCoV3(TinyBackbone())
    assert m.temperature == 1.0
    assert layout(m.projector)[0][2] == 4096 and layout(m.projector)[-1][1] == 256
    assert layout(m.predictor) == [("linear", 256, 4096, False), ("bn", 4096, 4096, True), ("ReLU",),
                                   ("linear", 4096, 256, False)]


def test_simsiam_defaults_are_the_papers():
    # projector f-f-f-2048 (hidden = f), last BN without affine; predictor a 2048-512-2048 bottleneck
    m = SimSiam(TinyBackbone())
    assert layout(m.projector) == [("linear", 8, 8, False), ("bn", 8, 8, True), ("ReLU",),
                                   ("linear", 8, 8, False), ("bn", 8, 8, True), ("ReLU",),
                                   ("linear", 8, 2048, False), ("bn", 2048, 2048, False)]
    assert layout(m.predictor) == [("linear", 2048, 512, False), ("bn", 512, 512, True), ("ReLU",),
                                   ("linear", 512, 2048, True)]
    small = SimSiam(TinyBackbone(), proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=4)
    assert layout(small.projector)[0][2] == 32 and layout(small.predictor)[0][1:3] == (16, 4)


def test_head_builders_default_to_the_papers_dimensions():
    assert layout(simsiam_prediction_head()) == [("linear", 2048, 512, False), ("bn", 512, 512, True), ("ReLU",),
                                                 ("linear", 512, 2048, True)]
    assert layout(mlp([4, 8, 2], last_bn=True)) == [("linear", 4, 8, False), ("bn", 8, 8, True), ("ReLU",),
                                                    ("linear", 8, 2, False), ("bn", 2, 2, True)]


def test_simsiam_returns_both_views_projections():
    torch.manual_seed(0)
    m = SimSiam(TinyBackbone(), proj_dim=6, pred_hidden_dim=4).eval()
    x1, x2 = torch.randn(5, 12), torch.randn(5, 12)
    out = m(x1, x2)
    assert torch.allclose(out.z1, m.project(x1)) and torch.allclose(out.z2, m.project(x2))


def test_parameter_groups_split_encoder_and_predictor_and_mark_1d_parameters():
    m = SimSiam(TinyBackbone(), proj_dim=6, pred_hidden_dim=4)
    groups = m.parameter_groups()
    assert [(g["name"], g["fixed_lr"], g["lars_exclude"]) for g in groups] == [
        ("encoder", False, False), ("encoder_1d", False, True),
        ("predictor", True, False), ("predictor_1d", True, True),
    ]
    assert all((p.ndim > 1) != g["lars_exclude"] for g in groups for p in g["params"])
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in m.parameters()) and len(set(grouped)) == len(grouped)
    encoder = {id(p) for p in list(m.backbone.parameters()) + list(m.projector.parameters())}
    assert {id(p) for g in groups[:2] for p in g["params"]} == encoder


def test_momentum_schedule_rises_from_base_to_one():
    assert momentum_schedule(0, 100) == pytest.approx(0.99)
    assert momentum_schedule(50, 100) == pytest.approx(0.995)
    assert momentum_schedule(1, 1) == pytest.approx(1.0) and momentum_schedule(7, 10, cosine=False) == 0.99


def test_build_method_builds_a_named_backbone():
    m = build_method("byol", "resnet18", proj_hidden_dim=32, proj_dim=8, pred_hidden_dim=16)
    assert isinstance(m, BYOL) and m.backbone.feature_dim == 512 and layout(m.projector)[0][1] == 512


def test_byol_defaults_are_the_papers():
    assert layout(byol_projection_head(8)) == [("linear", 8, 4096, False), ("bn", 4096, 4096, True), ("ReLU",),
                                               ("linear", 4096, 256, False)]
    m = BYOL(TinyBackbone())
    assert layout(m.projector) == [("linear", 8, 4096, False), ("bn", 4096, 4096, True), ("ReLU",),
                                   ("linear", 4096, 256, False)]
    assert layout(m.predictor) == [("linear", 256, 4096, False), ("bn", 4096, 4096, True), ("ReLU",),
                                   ("linear", 4096, 256, False)]


def test_byol_loss_is_two_minus_twice_the_cosine_per_row():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    z = torch.tensor([[5.0, 0.0], [0.0, -1.0], [0.0, 4.0]])  # cosines 1, -1, 0: losses 0, 4, 2
    assert byol_loss(p, z).item() == pytest.approx(2.0)
    assert byol_loss(p[:1], z[:1]).item() == pytest.approx(0.0, abs=1e-7)


def test_byol_loss_is_symmetric_against_the_target_projections():
    torch.manual_seed(0)
    m = BYOL(TinyBackbone(), proj_hidden_dim=16, proj_dim=6, pred_hidden_dim=16).eval()
    x1, x2 = torch.randn(5, 12), torch.randn(5, 12)
    out = m(x1, x2)
    z1, z2 = m.projector(m.backbone(x1)), m.projector(m.backbone(x2))
    t1, t2 = m.target_projector(m.target_backbone(x1)), m.target_projector(m.target_backbone(x2))
    def mse(p, t): return (2 - 2 * F.cosine_similarity(p, t, dim=1)).mean()
    assert out.loss.item() == pytest.approx((mse(m.predictor(z1), t2) + mse(m.predictor(z2), t1)).item(), rel=1e-5)
    assert torch.allclose(out.z1, z1) and torch.allclose(out.z2, z2)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_infonce_closed_form_on_orthogonal_keys(temperature):
    # q = k = scaled unit vectors: logits are 1/T on the diagonal and 0 elsewhere, so the cross-entropy is
    # log(e^(1/T) + n - 1) - 1/T, and MoCo-v3 multiplies it by 2T
    n = 4
    q = torch.eye(n) * torch.tensor([[3.0], [0.5], [2.0], [7.0]])
    expected = (math.log(math.exp(1 / temperature) + n - 1) - 1 / temperature) * 2 * temperature
    assert infonce_loss(q, q.clone(), temperature).item() == pytest.approx(expected, rel=1e-6)
    if temperature == 1.0: assert infonce_loss(q, q.clone()).item() == pytest.approx(expected, rel=1e-6)


def test_mocov3_loss_is_symmetric_infonce_against_the_target_keys():
    torch.manual_seed(0)
    m = MoCoV3(TinyBackbone(), proj_hidden_dim=16, proj_dim=6, pred_hidden_dim=16, temperature=0.5).eval()
    x1, x2 = torch.randn(5, 12), torch.randn(5, 12)
    out = m(x1, x2)
    z1, z2 = m.projector(m.backbone(x1)), m.projector(m.backbone(x2))
    k1, k2 = m.target_projector(m.target_backbone(x1)), m.target_projector(m.target_backbone(x2))
    def info_nce(q, k):
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / 0.5
        return F.cross_entropy(logits, torch.arange(len(q))) * 2 * 0.5
    expected = info_nce(m.predictor(z1), k2) + info_nce(m.predictor(z2), k1)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(out.z1, z1) and torch.allclose(out.z2, z2)


def _two_rank_infonce(rank, port, q, k, results):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        half = len(q) // 2
        mine = slice(rank * half, (rank + 1) * half)
        results[rank] = infonce_loss(q[mine], k[mine], 0.5).item()
    finally:
        dist.destroy_process_group()


def _expected_rank_loss(q, k, rank, temperature=0.5):
    "Rank `rank`'s queries against every rank's keys, each picking its own key in the global batch."
    half = len(q) // 2
    logits = F.normalize(q[rank * half:(rank + 1) * half], dim=1) @ F.normalize(k, dim=1).T / temperature
    return (F.cross_entropy(logits, torch.arange(half) + rank * half) * 2 * temperature).item()


def test_infonce_gathers_every_ranks_keys_in_two_processes():
    import torch.multiprocessing as mp
    torch.manual_seed(1)
    q, k = torch.randn(6, 5), torch.randn(6, 5)
    port = 29500 + os.getpid() % 1000
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_two_rank_infonce, args=(port, q, k, results), nprocs=2)
        got = dict(results)
    for rank in (0, 1):
        assert got[rank] == pytest.approx(_expected_rank_loss(q, k, rank), rel=1e-5)
    # and not what a rank alone would compute over its own keys
    assert got[1] != pytest.approx(infonce_loss(q[3:], k[3:], 0.5).item(), rel=1e-3)
