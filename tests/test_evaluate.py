"Evaluation: features, kNN, both probes, and the accuracy predictor."
import numpy as np
import pytest
import torch

from simsiam_collapse.claims import fit_accuracy_predictor
from simsiam_collapse.collapse import SpectrumAccumulator, singular_values
from simsiam_collapse.datasets import load_dataset
from simsiam_collapse.evaluate import extract_features, knn_accuracy, knn_predict, linear_probe_on_features
from simsiam_collapse.models import build_backbone


def _clusters(n, d=32, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    return torch.eye(d)[y] * 4 + 0.1 * torch.randn(n, d, generator=g), y


def test_streamed_spectrum_of_extracted_features_equals_full_svd():
    ds = load_dataset("digits")
    net = build_backbone("resnet18", stem="cifar", width=4, in_channels=1)
    acc = SpectrumAccumulator()
    assert extract_features(net, ds, batch_size=300, accumulator=acc, keep=False, progress=False) is None
    feats = extract_features(net, ds, batch_size=1000, progress=False)
    full = singular_values(feats)
    top = full > 1e-3 * full[0]
    assert torch.allclose(acc.singular_values()[top], full[top], rtol=1e-4)


def test_extraction_is_deterministic_and_order_preserving():
    ds = load_dataset("fake", num_samples=64, image_size=16)
    net = build_backbone("resnet18", stem="cifar", width=4)
    a = extract_features(net, ds, batch_size=10, progress=False)
    b = extract_features(net, ds, batch_size=64, indices=torch.arange(64).flip(0), progress=False)
    assert torch.allclose(a, b.flip(0), atol=1e-5)


def test_knn_on_clusters_and_shuffled_labels():
    xtr, ytr = _clusters(2000); xte, yte = _clusters(500, seed=1)
    assert knn_accuracy(xtr, ytr, xte, yte) == 100.0  # k=200, T=0.1
    assert knn_accuracy(xtr, ytr, xte, yte, k=20, temperature=0.07) == 100.0
    g = torch.Generator().manual_seed(0)  # labels unrelated to the features: chance is 10 %, std about 1 point here
    noise = knn_accuracy(torch.randn(5000, 32, generator=g), torch.randint(10, (5000,), generator=g),
                         torch.randn(2000, 32, generator=g), torch.randint(10, (2000,), generator=g))
    assert 6 < noise < 14


def test_weighted_vote_breaks_what_majority_cannot():
    # query nearest to the single class-1 point; two class-0 points are farther: majority says 0, weighted says 1
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    labels = torch.tensor([1, 0, 0])
    q = torch.tensor([[1.0, 0.05]])
    assert knn_predict(bank, labels, q, k=3, temperature=0.1).item() == 1
    assert knn_predict(bank, labels, q, k=3, weighted=False).item() == 0
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        knn_predict(bank, labels, q, k=0)


def test_knn_on_mnist_pixels_is_far_above_chance():
    tr, te = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    acc = knn_accuracy(tr.images.flatten(1).float(), tr.labels, te.images.flatten(1).float(), te.labels, k=20)
    assert acc > 85


def test_fast_probe_separable_and_shuffled():
    xtr, ytr = _clusters(2000); xte, yte = _clusters(500, seed=1)
    good = linear_probe_on_features(xtr, ytr, xte, yte, epochs=10, progress=False)
    assert good.final_accuracy >= 99 and len(good.history) == 10
    assert good.best_accuracy >= good.final_accuracy and good.history[good.best_epoch] == good.best_accuracy
    g = torch.Generator().manual_seed(1)
    bad = linear_probe_on_features(
        torch.randn(5000, 32, generator=g),
        torch.randint(10, (5000,), generator=g),
        torch.randn(2000, 32, generator=g),
        torch.randint(10, (2000,), generator=g),
        epochs=10,
        progress=False,
    )
    assert 6 < bad.final_accuracy < 14


def test_predictor_recovers_coefficients_and_loo_matches_refits():
    rng = np.random.default_rng(3)
    loss, auc = rng.uniform(-0.95, -0.6, 20), rng.uniform(0.55, 0.95, 20)
    acc = 80 + 30 * loss - 50 * auc + rng.normal(0, 0.3, 20)
    fit = fit_accuracy_predictor(loss, auc, acc)
    assert np.allclose(fit.coef, [80, 30, -50], atol=3)
    assert fit.r2 > 0.98 and fit.loo_r2 <= fit.r2
    press = 0.0
    for i in range(20):
        keep = np.arange(20) != i
        press += (acc[i] - fit_accuracy_predictor(loss[keep], auc[keep], acc[keep]).predict(loss[i], auc[i])) ** 2
    assert fit.loo_r2 == pytest.approx(1 - press / ((acc - acc.mean()) ** 2).sum(), abs=1e-10)
    # accuracy unrelated to loss and AUC: no predictive power out of sample
    noise = fit_accuracy_predictor(loss, auc, rng.normal(50, 5, 20))
    assert noise.loo_r2 < 0.2


def test_the_probe_learning_rate_is_the_authors_rule_under_larc(monkeypatch):
    """0.1 x batch / 256 (the authors' main_lincls): 0.4 at the batch of 1,024 they ran, 0.1 at 256; LARS means
    apex's LARC, the bias adapted too."""
    import simsiam_collapse.evaluate as evaluate
    from simsiam_collapse.optim import LARC
    made = []
    class Recording(LARC):
        def __init__(self, params, lr=0.0, **kw):
            made.append(lr); super().__init__(params, lr=lr, **kw)
    monkeypatch.setattr(evaluate, "LARC", Recording)
    x, y = torch.randn(2048, 8), torch.randint(0, 3, (2048,))
    for batch in (1024, 256):
        evaluate.linear_probe_on_features(x, y, x, y, epochs=1, batch_size=batch, lars=True, progress=False)
    assert made == [pytest.approx(0.4), pytest.approx(0.1)]
