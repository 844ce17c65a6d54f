"Evaluation: features, kNN, both probes, and the accuracy predictor."
import numpy as np
import pytest
import torch

from simsiam_collapse.augment import eval_transform
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


# What mutation testing of `evaluate` found unchecked: the reference extraction, the kNN's k and temperature on their
# way through, the probes' accuracy formula, standardisation, learning rate, schedule, data order and recipe.

def test_extracted_features_are_the_backbones_outputs_on_the_evaluation_transform_of_the_images_asked_for():
    ds = load_dataset("digits")
    net = build_backbone("resnet18", stem="cifar", width=4, in_channels=1).eval()
    idx = torch.tensor([17, 3, 250, 3, 99, 1000, 5, 42, 8, 600, 11])  # out of order, a repeat; 6 batches of 2
    with torch.no_grad(): expected = net(eval_transform(ds.images[idx], 16, ds.mean, ds.std)).float()
    got = extract_features(net, ds, batch_size=2, image_size=16, indices=idx, progress=False)
    assert torch.allclose(got, expected, atol=1e-5)


def test_extraction_passes_the_key_of_a_dataset_of_dicts():
    net = build_backbone("resnet18", stem="cifar", width=4, in_channels=1).eval()
    x = torch.randn(6, 1, 8, 8)
    class Pixels(torch.utils.data.Dataset):
        def __len__(self): return 6
        def __getitem__(self, i): return {"pixels": x[i], "label": 0}
    with torch.no_grad(): expected = net(x).float()
    assert torch.allclose(extract_features(net, Pixels(), key="pixels", batch_size=4, progress=False), expected,
                          atol=1e-5)


def test_extraction_messages_whole():
    ds = load_dataset("digits")
    net = build_backbone("resnet18", stem="cifar", width=4, in_channels=1)
    for call, message in [
        (lambda: extract_features(net, ds, indices=[], progress=False),
         "No images to extract features from: `indices` is empty."),
        (lambda: extract_features(net, ds, key="image", progress=False),
         "key and transform apply to your own data; this package's data sets bring their own."),
        (lambda: extract_features(net, torch.zeros(2, 1, 8, 8), image_size=16, progress=False),
         "indices and image_size apply to this package's data sets; with your own data, select and transform the "
         "inputs before passing them (a Subset, your DataLoader's transform)."),
    ]:
        with pytest.raises(ValueError) as caught: call()
        assert str(caught.value) == message


def test_knn_takes_k_of_one_and_hands_k_and_temperature_through():
    bank, labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]]), torch.tensor([1, 0, 0])
    q = torch.tensor([[1.0, 0.3]])
    assert knn_predict(bank, labels, q, k=1).item() == 1  # the nearest alone
    assert knn_accuracy(bank, labels, q, [1], k=1, weighted=False) == 100.0  # k=1 reaches knn_predict ...
    assert knn_accuracy(bank, labels, q, [1], k=3, weighted=False) == 0.0  # ... where the default would vote 2 to 1
    # the temperature: one neighbour at cosine 1 against two at cosine 0.9 (exp(10) > 2 exp(9) at 0.1; not at 1), for
    # two queries at once (each normalised on its own, not by the norm of the chunk)
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.19 ** 0.5], [0.9, -(0.19 ** 0.5)]])
    queries = torch.tensor([[3.0, 0.0], [0.5, 0.0]])
    assert knn_predict(bank, [0, 1, 1], queries, k=3, temperature=0.1).tolist() == [0, 0]
    assert knn_predict(bank, [0, 1, 1], queries, k=3, temperature=1.0).tolist() == [1, 1]


def _recorded_probe(monkeypatch, probe, *args, **kwargs):
    "Run `probe` with `_train_probe` replaced by a recorder of what it was handed."
    import simsiam_collapse.evaluate as evaluate
    seen = {}
    def record(features_of, train_labels, evaluate_head, **kw):
        seen.update(kw, features_of=features_of, evaluate=evaluate_head, train_labels=train_labels)
    monkeypatch.setattr(evaluate, "_train_probe", record)
    probe(*args, **kwargs)
    return seen


def test_the_fast_probe_standardises_with_the_training_features_statistics(monkeypatch):
    g = torch.Generator().manual_seed(0)
    xtr = torch.randn(50, 3, generator=g) * torch.tensor([0.1, 5.0, 0.0]) + torch.tensor([100.0, -3.0, 7.0])
    xte = torch.randn(20, 3, generator=g) + 100
    seen = _recorded_probe(monkeypatch, linear_probe_on_features, xtr, torch.arange(50) % 3, xte, torch.arange(20) % 3)
    assert seen["protocol"] == "cached features, standardised" and seen["dim"] == 3 and seen["num_classes"] == 3
    z = seen["features_of"](torch.arange(50), 0)
    std = xtr.std(0).clamp_min(1e-6)  # a constant feature is divided by 1e-6, not 0
    assert torch.allclose(z, (xtr - xtr.mean(0)) / std, atol=1e-4)
    assert torch.allclose(z[:, :2].mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(z[:, :2].std(0), torch.ones(2))
    zte = (xte - xtr.mean(0)) / std  # the test features with the training statistics: the head sees them so
    always_0 = lambda f: torch.nn.functional.one_hot(torch.zeros(len(f), dtype=torch.long), 3).float()
    assert seen["evaluate"](always_0) == pytest.approx(100 * 7 / 20)  # 7 of the 20 test labels are 0
    def sees_standardised(f):
        assert torch.allclose(f, zte, atol=1e-3); return always_0(f)
    seen["evaluate"](sees_standardised)
    raw = _recorded_probe(monkeypatch, linear_probe_on_features, xtr, torch.arange(50) % 3, xte, torch.arange(20) % 3,
                          standardize=False, lr=0.3)
    assert raw["protocol"] == "cached features" and raw["lr"] == 0.3
    assert torch.equal(raw["features_of"](torch.arange(50), 0), xtr)


def test_the_probe_sets_the_cosine_schedule_each_epoch_and_sees_every_image_once_an_epoch(monkeypatch):
    import simsiam_collapse.evaluate as evaluate
    from simsiam_collapse.optim import learning_rate
    rates = []
    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            assert self.param_groups[0]["momentum"] == 0.9  # the authors' SGD
            rates.append(self.param_groups[0]["lr"]); return super().step(closure)
    monkeypatch.setattr(torch.optim, "SGD", Recording)
    visited = []
    real = evaluate._train_probe
    def recording_train_probe(features_of, *args, **kw):
        def features(idx, epoch):
            visited.append((epoch, idx.clone())); return features_of(idx, epoch)
        return real(features, *args, **kw)
    monkeypatch.setattr(evaluate, "_train_probe", recording_train_probe)
    x, y = torch.randn(10, 4), torch.arange(10) % 2
    result = linear_probe_on_features(x, y, x, y, epochs=3, batch_size=4, lr=0.2, progress=False)
    base = 0.2 * 4 / 256
    assert rates == [pytest.approx(learning_rate(base, e, 3)) for e in range(3) for _ in range(3)]  # 3 steps an epoch
    for e in range(3):  # each epoch: batches of 4, 4, 2 covering the 10 images once
        batches = [idx for epoch, idx in visited if epoch == e]
        assert [len(b) for b in batches] == [4, 4, 2] and sorted(torch.cat(batches).tolist()) == list(range(10))
    assert result.history[result.best_epoch] == max(result.history) and len(result.history) == 3


def test_the_best_epoch_is_the_most_accurate_one(monkeypatch):
    import simsiam_collapse.evaluate as evaluate
    scores = iter([40.0, 70.0, 55.0])
    x, y = torch.randn(8, 2), torch.arange(8) % 2
    result = evaluate._train_probe(lambda idx, _: x[idx], y, lambda head: next(scores), dim=2, num_classes=2, epochs=3,
                                   batch_size=4, lr=0.1, lars=False, seed=0, device="cpu", protocol="test",
                                   progress=False)
    assert (result.final_accuracy, result.best_accuracy, result.best_epoch) == (55.0, 70.0, 1)


def test_the_papers_probe_augments_with_crops_and_flips_only_and_scores_the_test_set(monkeypatch):
    import simsiam_collapse.evaluate as evaluate
    recipes = []
    class Recording(evaluate.BatchAugment):
        def __init__(self, recipe, *args, **kwargs):
            recipes.append(recipe); super().__init__(recipe, *args, **kwargs)
    monkeypatch.setattr(evaluate, "BatchAugment", Recording)
    train, test = load_dataset("fake", "train", num_samples=40, image_size=16), \
        load_dataset("fake", "test", num_samples=30, image_size=16)
    class MeanColour(torch.nn.Module):
        feature_dim = 3
        def forward(self, x): return x.mean((2, 3))
    seen = _recorded_probe(monkeypatch, evaluate.linear_probe, MeanColour(), train, test, lr=0.05, lars=False)
    (recipe,) = recipes
    assert (recipe.crop_scale, recipe.jitter_p, recipe.grayscale_p, recipe.blur_p) == ((0.08, 1.0), 0, 0, 0)
    assert recipe.flip_p == evaluate.ViewRecipe().flip_p
    assert (seen["lr"], seen["lars"], seen["protocol"], seen["num_classes"]) == (0.05, False, "paper (augmented)", 10)
    assert _recorded_probe(monkeypatch, evaluate.linear_probe, MeanColour(), train, test)["lars"] is True  # by default
    always_0 = lambda f: torch.nn.functional.one_hot(torch.zeros(len(f), dtype=torch.long), 10).float()
    assert seen["evaluate"](always_0) == pytest.approx(100 * (test.labels == 0).float().mean().item())
    batch = seen["features_of"](torch.arange(8), 0)
    assert batch.shape == (8, 3)


@pytest.fixture
def streamed(tmp_path):
    "A streamed image folder of 10 images, 16 px squares decoded from originals of other shapes (their `sizes`)."
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(10):
            (tmp_path/split/f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            h, w = (12, 24) if i % 3 else (30, 18)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path/split/f"c{i % 2}"/f"{i}.png")
    return load_dataset(f"imagefolder:{tmp_path}", "train", stream=True, image_size=16)


class Flat(torch.nn.Module):
    "A backbone that hands its input back, flattened: what the evaluation fed it."
    feature_dim = 3 * 8 * 8
    def forward(self, x): return x.flatten(1)


def test_features_of_a_streamed_folder_crop_each_image_in_its_own_geometry(streamed):
    assert len(set(map(tuple, streamed.sizes.tolist()))) == 2  # two shapes of originals
    idx = torch.tensor([7, 2, 9, 0, 5])
    images, _ = streamed.batch(idx)
    expected = eval_transform(images, 8, streamed.mean, streamed.std, sizes=streamed.sizes[idx]).flatten(1)
    got = extract_features(Flat(), streamed, batch_size=2, image_size=8, indices=idx, progress=False)
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("stream", [False, True])
def test_the_papers_probe_draws_its_crops_from_its_seed_in_the_images_geometry(streamed, monkeypatch, stream):
    import simsiam_collapse.evaluate as evaluate
    train = streamed if stream else load_dataset("fake", "train", num_samples=10, image_size=16)
    seen = _recorded_probe(monkeypatch, evaluate.linear_probe, Flat(), train, train, image_size=8, seed=3)
    idx = torch.tensor([4, 1, 8])
    images, _ = train.batch(idx)
    augment = evaluate.BatchAugment(evaluate.ViewRecipe(crop_scale=(0.08, 1.0), jitter_p=0, grayscale_p=0, blur_p=0),
                                    8, train.mean, train.std)
    g = torch.Generator().manual_seed(3 + 1)
    expected = augment.apply(images, augment.sample(len(idx), *train.sizes[idx].unbind(1), generator=g)) if stream \
        else augment(images, g)
    assert torch.allclose(seen["features_of"](idx, 0), expected.flatten(1), atol=1e-6)
    # and the test images at the probe's size, by the evaluation transform
    test_features = []
    seen["evaluate"](lambda f: test_features.append(f) or torch.zeros(len(f), 2))
    assert torch.allclose(test_features[0], extract_features(Flat(), train, image_size=8, progress=False), atol=1e-6)


def test_the_fast_probes_default_batch_is_the_one_the_scales_record(monkeypatch):
    "The runner leaves the fast probe's batch to its default, and a scale records it as `probe_batch_size`."
    from simsiam_collapse.scales import SCALES
    x, y = torch.randn(6, 2), torch.arange(6) % 2
    used = _recorded_probe(monkeypatch, linear_probe_on_features, x, y, x, y)["batch_size"]
    assert {s.probe_batch_size for s in SCALES.values() if s.probe != "paper"} == {used}
