"Backbones and methods: shapes for every preset, stem and channel count; properties of the three losses."

import pytest
import torch
import torchvision

from simsiam_collapse.methods import BYOL, MoCoV3, build_method
from simsiam_collapse.models import PRESETS, build_backbone, count_parameters


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_parameter_counts_equal_torchvision(name):
    ours = build_backbone(name, num_classes=1000)
    assert count_parameters(ours) == count_parameters(getattr(torchvision.models, name)())


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("stem,size", [("cifar", 16), ("imagenet", 64)])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes(name, stem, size, channels):
    m = build_backbone(name, stem=stem, width=4, in_channels=channels)
    expansion = 4 if PRESETS[name]["block"] == "bottleneck" else 1
    assert m.feature_dim == 4 * 8 * expansion
    assert m(torch.randn(2, channels, size, size)).shape == (2, m.feature_dim)


def test_cifar_stem_keeps_resolution():
    # the CIFAR stem does not downsample: a 32 px input reaches the last stage at 4 px (three stride-2 stages)
    m = build_backbone("resnet18", stem="cifar", width=4)
    assert m.stages(m.stem(torch.randn(1, 3, 32, 32))).shape[-1] == 4
    m = build_backbone("resnet18", width=4)
    assert m.stages(m.stem(torch.randn(1, 3, 224, 224))).shape[-1] == 7


@pytest.mark.parametrize("bad,match", [(dict(layers=(2, 0)), "layers must be positive"),
                                       (dict(block="dense"), "Valid: basic, bottleneck"),
                                       (dict(in_channels=2.5), "in_channels must be a positive integer, got 2.5"),
                                       (dict(width=True), "width must be a positive integer, got True")])
def test_bad_overrides(bad, match):
    with pytest.raises(ValueError, match=match):
        build_backbone("resnet18", **bad)


@pytest.mark.parametrize("cls", [BYOL, MoCoV3])
def test_target_has_no_gradient_and_starts_as_online_copy(cls):
    m = cls(build_backbone("resnet18", stem="cifar", width=4), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    for t, o in zip(m.target_parameters(), m.online_parameters()):
        assert torch.equal(t, o) and not t.requires_grad
    m(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)).loss.backward()
    assert all(p.grad is None for p in m.target_parameters())
    grouped = {id(p) for g in m.parameter_groups() for p in g["params"]}
    assert not grouped & {id(p) for p in m.target_parameters()}


def test_each_view_has_its_own_batch_norm_statistics():
    """The loss equals the one computed from each view forwarded alone (its own BN statistics), as the authors' code
    does."""
    torch.manual_seed(0)
    m = build_method("simsiam", build_backbone("resnet18", stem="cifar", width=4), proj_dim=16, pred_hidden_dim=8)
    a, b = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8) * 3 + 1  # views with different statistics
    cos = torch.nn.functional.cosine_similarity
    za, zb = m.projector(m.backbone(a)), m.projector(m.backbone(b))
    alone = -0.5 * (cos(m.predictor(za), zb).mean() + cos(m.predictor(zb), za).mean())
    assert torch.allclose(m(a, b).loss, alone, atol=1e-6)
    # concatenating both views in one pass (shared statistics) gives another loss, so the check above can fail
    z = m.projector(m.backbone(torch.cat([a, b])))
    p = m.predictor(z)
    shared = -0.5 * (cos(p[:8], z[8:]).mean() + cos(p[8:], z[:8]).mean())
    assert not torch.allclose(alone, shared, atol=1e-4)
