"The collapse metric: closed forms, the official values, invariances, and the streaming spectrum."
import numpy as np
import pytest
import torch

from simsiam_collapse.collapse import (OFFICIAL_AUC, OFFICIAL_AUC_SQUARED, SpectrumAccumulator, collapse_auc,
                                       cumulative_explained_variance, official_spectra, rankme, singular_values)


def test_official_spectra_give_the_papers_auc():
    spectra = official_spectra()
    assert sorted(spectra) == [1, 5, 10, 20, 50, 100] and all(len(s) == 512 for s in spectra.values())
    for k, s in spectra.items():
        assert collapse_auc(s) == pytest.approx(OFFICIAL_AUC[k], abs=1e-4)
        assert collapse_auc(s, power=2) == pytest.approx(OFFICIAL_AUC_SQUARED[k], abs=1e-4)


@pytest.mark.parametrize("d", [1, 2, 512, 2048])
def test_flat_spectrum_closed_form(d):
    assert collapse_auc(torch.ones(d)) == pytest.approx((d + 1) / (2 * d))


def test_auc_grows_as_the_spectrum_concentrates():
    d = 128
    aucs = [collapse_auc(torch.arange(1, d + 1, dtype=torch.float64).flip(0) ** p) for p in (0, 1, 2, 4, 8)]
    assert all(a < b for a, b in zip(aucs, aucs[1:])) and aucs[-1] < 1


def test_cumulative_explained_variance_ends_at_one_and_sorts():
    c = cumulative_explained_variance(np.array([1.0, 3.0, 2.0]))
    assert torch.allclose(c, torch.tensor([0.5, 5 / 6, 1.0], dtype=torch.float64))


def test_constant_features_are_an_error():
    with pytest.raises(ValueError, match="constant"):
        collapse_auc(singular_values(torch.ones(10, 4)))


def test_normalize_option_matches_manual_normalisation():
    x = torch.randn(300, 16, dtype=torch.float64) * torch.rand(300, 1) * 10
    manual = torch.nn.functional.normalize(x, dim=1)
    assert torch.allclose(singular_values(x, normalize=True), torch.linalg.svdvals(manual - manual.mean(0)))


def _relative_error(a, b):
    return ((a - b).abs() / b).max().item()


@pytest.mark.parametrize("batch_sizes", [[1000] * 5, [1, 7, 999, 2048, 1945]])
def test_streaming_equals_full_svd(batch_sizes):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(batch_sizes), 64, generator=g, dtype=torch.float64) @ torch.randn(64, 64, generator=g, dtype=torch.float64)
    x += 10  # a large mean, as pooled ReLU features have
    acc = SpectrumAccumulator()
    for chunk in x.split(batch_sizes): acc.update(chunk.float().double().numpy() if len(chunk) % 2 else chunk)
    assert acc.n == len(x)
    assert _relative_error(acc.singular_values(), singular_values(x)) < 1e-6


def test_streaming_handles_rank_deficient_features():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3000, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 40, generator=g, dtype=torch.float64)
    acc = SpectrumAccumulator()
    for chunk in x.split(512): acc.update(chunk)
    s, full = acc.singular_values(), singular_values(x)
    assert _relative_error(s[:5], full[:5]) < 1e-6
    assert s[5:].max() < 1e-5 * s[0]  # the null directions stay (numerically) zero, never NaN
    assert collapse_auc(s) == pytest.approx(collapse_auc(full), abs=1e-6)


def test_streaming_normalize_and_uncentred_options():
    x = torch.randn(2000, 8, dtype=torch.float64) + 3
    for kwargs in (dict(normalize=True), dict(center=False)):
        acc = SpectrumAccumulator(**kwargs)
        for chunk in x.split(300): acc.update(chunk)
        assert _relative_error(acc.singular_values(), singular_values(x, **kwargs)) < 1e-6


def test_streaming_rejects_mismatched_batches():
    acc = SpectrumAccumulator().update(torch.randn(4, 8))
    with pytest.raises(ValueError, match="Batch has 9 features, earlier batches had 8"):
        acc.update(torch.randn(4, 9))


def test_rankme_of_official_spectra_orders_like_auc_at_the_extremes():
    spectra = official_spectra()
    assert rankme(spectra[1]) > rankme(spectra[20])  # 1 % is the least collapsed, 20 % the most
    assert collapse_auc(spectra[1]) < collapse_auc(spectra[20])
