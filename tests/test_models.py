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


def test_the_smallest_network_is_one_stage_of_one_block():
    m = build_backbone("resnet18", stem="cifar", width=4, layers=(1,))
    assert len(m.stages) == 1 and len(m.stages[0]) == 1 and m(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_cifar_stem_keeps_resolution():
    # the CIFAR stem does not downsample: a 32 px input reaches the last stage at 4 px (three stride-2 stages)
    m = build_backbone("resnet18", stem="cifar", width=4)
    assert m.stages(m.stem(torch.randn(1, 3, 32, 32))).shape[-1] == 4
    m = build_backbone("resnet18", width=4)
    assert m.stages(m.stem(torch.randn(1, 3, 224, 224))).shape[-1] == 7


@pytest.mark.parametrize("bad,match", [(dict(layers=(2, 0)), "layers must be positive"),
                                       (dict(block="dense"), "Valid: basic, bottleneck"),
                                       (dict(in_channels=2.5), "in_channels must be a positive integer, got 2.5"),
                                       (dict(width=True), "width must be a positive integer, got True"),
                                       (dict(depth=1, groups=4), r"^Unknown backbone option\(s\) depth, groups\. "
                                        r"Valid: block, layers, width, width_per_group, stem, zero_init_residual, "
                                        r"in_channels, num_classes\.$")])
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


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_the_backbones_compute_torchvisions_resnets_given_the_same_weights(name, stem):
    """Weights and batch-norm statistics drawn at random, copied from torchvision's network into ours in order: the
    same outputs in eval mode (running statistics) and in training mode (the batch's), so every convolution, stride,
    padding, ReLU, shortcut and pooling sits where torchvision's does. The CIFAR stem is the CIFAR ports' change to
    torchvision's: a 3x3 stride-1 convolution and no max pooling."""
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)()
    if stem == "cifar":
        theirs.conv1, theirs.maxpool = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False), torch.nn.Identity()
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean): t.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2)
    ours = build_backbone(name, stem=stem, num_classes=1000)
    mine, their_state = ours.state_dict(), list(theirs.state_dict().values())
    assert [v.shape for v in mine.values()] == [v.shape for v in their_state]
    ours.load_state_dict(dict(zip(mine, their_state)))
    x = torch.randn(2, 3, 32 if stem == "cifar" else 64, 32 if stem == "cifar" else 64)
    for mode in (False, True):
        theirs.train(mode), ours.train(mode)
        assert torch.allclose(ours(x), theirs(x), atol=1e-4, rtol=1e-4), mode


def test_initialisation_is_torchvisions():
    """He initialisation by fan-out (the stem's 7x7 convolution from 3 to 64 channels: std sqrt(2 / (64 x 49)), 0.025,
    where fan-in would give 0.117), batch norms at weight 1 and bias 0, but the last of each residual branch at 0."""
    torch.manual_seed(0)
    m = build_backbone("resnet50")
    assert m.stem[0].weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.03)
    conv = m.stages[3][0].conv3  # 1x1 from 512 to 2048 channels
    assert conv.weight.std().item() == pytest.approx((2 / 2048) ** 0.5, rel=0.03)
    last = {id(b.last_bn()) for b in m.modules() if hasattr(b, "last_bn")}
    for bn in (b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)):
        assert torch.equal(bn.weight, torch.full_like(bn.weight, 0.0 if id(bn) in last else 1.0))
        assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


def test_a_backbone_records_its_architecture():
    "`config` holds every argument of `ResNet` as built: what a caller reads to see which network it got."
    m = build_backbone("bottleneck26_2x", stem="cifar", width=8, in_channels=1)
    assert m.config == dict(block="bottleneck", layers=(2, 2, 2, 2), width=8, width_per_group=128, stem="cifar",
                            zero_init_residual=True, in_channels=1, num_classes=0)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_each_block_starts_as_the_identity(block):
    """With `zero_init_residual` (the default, as the paper's code) each residual branch ends in a zero-weight batch
    norm, so a block passes its (non-negative, post-ReLU) input through unchanged; without it, it does not."""
    x = torch.rand(4, 64, 8, 8)
    for zero, same in ((True, True), (False, False)):
        stage = build_backbone("resnet18", block=block, width=16, zero_init_residual=zero).stages[0]
        b = stage[1]  # the second block of the first stage: stride 1, as many channels in as out
        assert torch.allclose(b(x[:, :b.conv1.in_channels]), x[:, :b.conv1.in_channels]) == same
