"The collapse metric: closed forms, the official values, invariances, and the streaming spectrum."
import warnings

import numpy as np
import pytest
import torch

from simsiam_collapse.collapse import (
    SpectrumAccumulator,
    collapse_auc,
    collapse_measures,
    cumulative_explained_variance,
    official_spectra,
    rankme,
    singular_values,
    std_of_l2_normalized,
)


def test_auc_grows_as_the_spectrum_concentrates():
    d = 128
    aucs = [collapse_auc(torch.arange(1, d + 1, dtype=torch.float64).flip(0) ** p) for p in (0, 1, 2, 4, 8)]
    assert all(a < b for a, b in zip(aucs, aucs[1:])) and aucs[-1] < 1


def test_cumulative_explained_variance_ends_at_one_and_sorts():
    c = cumulative_explained_variance(np.array([1.0, 3.0, 2.0]))
    assert torch.allclose(c, torch.tensor([0.5, 5 / 6, 1.0], dtype=torch.float64))


def test_total_collapse_has_auc_one_and_rankme_one():
    constant = torch.full((10, 4), 3.0)
    assert collapse_auc(singular_values(constant)) == 1.0
    m = collapse_measures(constant)
    assert m["auc"] == 1.0 and m["rankme"] == pytest.approx(1.0, abs=1e-4)  # the raw spectrum is rank one: the mean
    assert collapse_measures(torch.zeros(10, 4))["rankme"] == 1.0  # all zero: 1 by continuity
    acc = SpectrumAccumulator().update(constant)
    assert collapse_auc(acc.singular_values()) == 1.0


def test_fewer_rows_than_dimensions_averages_over_all_d():
    x = torch.randn(100, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.warns(UserWarning, match="100 feature vectors for 512 dimensions"):
        full = singular_values(x)
    acc = SpectrumAccumulator()
    for chunk in x.split(30): acc.update(chunk)
    with pytest.warns(UserWarning, match="100 feature vectors for 512 dimensions"):
        streamed = acc.singular_values()
    assert len(full) == len(streamed) == 512
    assert collapse_auc(full) == pytest.approx(collapse_auc(streamed), abs=1e-6)
    assert collapse_auc(full) > 0.9  # 413 of 512 directions hold nothing (99 after centring)


def test_nan_features_name_the_count_and_empty_batches_are_ignored():
    x = torch.randn(20, 8); x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN or inf value"):
        singular_values(x)
    with pytest.raises(ValueError, match="1 NaN or inf value"):
        SpectrumAccumulator().update(x)
    acc = SpectrumAccumulator().update(torch.randn(20, 8)).update(torch.empty(0, 8))
    assert acc.n == 20 and torch.isfinite(acc.singular_values()).all()


def test_rankme_is_computed_on_uncentred_features():
    g = torch.Generator().manual_seed(3)
    relu = torch.relu(torch.randn(2000, 16, generator=g, dtype=torch.float64) + 0.5)
    assert collapse_measures(relu)["rankme"] == pytest.approx(rankme(torch.linalg.svdvals(relu)), rel=1e-9)
    assert collapse_measures(relu)["auc"] == pytest.approx(
        collapse_auc(torch.linalg.svdvals(relu - relu.mean(0))), rel=1e-9
    )


def test_normalize_option_matches_manual_normalisation():
    x = torch.randn(300, 16, dtype=torch.float64) * torch.rand(300, 1) * 10
    manual = torch.nn.functional.normalize(x, dim=1)
    assert torch.allclose(singular_values(x, normalize=True), torch.linalg.svdvals(manual - manual.mean(0)))


def _relative_error(a, b):
    return ((a - b).abs() / b).max().item()


@pytest.mark.parametrize("batch_sizes", [[1000] * 5, [1, 7, 999, 2048, 1945]])
def test_streaming_equals_full_svd(batch_sizes):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(batch_sizes), 64, generator=g, dtype=torch.float64) @ torch.randn(
        64, 64, generator=g, dtype=torch.float64
    )
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


# Boundaries and messages the mutation run (tests/README.md) found untested.

def test_two_vectors_suffice_one_is_refused_by_name():
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match="Only 2 feature vectors for 3 dimensions: at least 2 singular values"):
        assert len(singular_values(x)) == 3
    with pytest.raises(ValueError, match="Need at least 2 feature vectors to measure a spectrum, got 1."):
        singular_values(x[:1])
    acc = SpectrumAccumulator().update(x)
    with pytest.warns(UserWarning, match="Only 2 feature vectors for 3 dimensions"):
        assert len(acc.singular_values()) == 3
    with pytest.raises(ValueError, match="Need at least 2 feature vectors, got 1."):
        SpectrumAccumulator().update(x[:1]).singular_values()


def test_as_many_vectors_as_dimensions_is_no_warning():
    # (where the warning points, its stacklevel, is not asserted: mutmut's trampolines add frames)
    x = torch.randn(4, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        singular_values(x)
        SpectrumAccumulator().update(x).singular_values()


def test_bad_singular_values_are_named():
    for f in (cumulative_explained_variance, rankme):
        with pytest.raises(ValueError, match="^Singular values contain 1 NaN or inf value"):
            f(np.array([1.0, np.nan]))
    for f in (cumulative_explained_variance, rankme):  # RankMe too (it returned 1.0 for [1, -1])
        with pytest.raises(ValueError, match=r"^Singular values must be non-negative, got -0.5\.$"):
            f(np.array([1.0, -0.5]))


def test_collapse_measures_reports_dimension_and_centred_spectrum_for_any_input():
    x = torch.randn(50, 6, dtype=torch.float64) + 3.0
    full = collapse_measures(x)
    assert full["feature_dim"] == 6 and torch.allclose(full["spectrum"], singular_values(x))
    # an accumulator set to uncentred still gives the paper's (centred) AUC, and the uncentred RankMe
    streamed = collapse_measures(SpectrumAccumulator(center=False).update(x))
    assert streamed["feature_dim"] == 6 and torch.allclose(streamed["spectrum"], singular_values(x), atol=1e-9)
    assert abs(streamed["auc"] - full["auc"]) < 1e-9 and abs(streamed["rankme"] - full["rankme"]) < 1e-6


def test_std_of_l2_normalized_is_the_per_dimension_std_over_samples():
    # rows e1, e2, e1, e2: each dimension is 1, 0, 1, 0 over the samples, std (n - 1) sqrt(1/3); collapsed: 0
    z = torch.tensor([[3.0, 0.0], [0.0, 2.0], [5.0, 0.0], [0.0, 1.0]])
    assert std_of_l2_normalized(z) == pytest.approx(np.sqrt(1 / 3))
    assert std_of_l2_normalized(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-7)


def test_official_spectra_are_float64():
    assert all(s.dtype == torch.float64 and len(s) == 512 for s in official_spectra().values())


def test_inputs_are_float64_tensors_and_anything_else_is_named():
    assert singular_values(torch.randn(10, 3, dtype=torch.float32)).dtype == torch.float64
    with pytest.raises(TypeError, match="^Expected a torch tensor or numpy array, got list.$"):
        singular_values([[1.0, 2.0], [3.0, 4.0]])
    x = torch.randn(10, 3)
    x[2, 1] = float("inf")
    with pytest.raises(ValueError, match="^Features contain 1 NaN or inf value"):
        singular_values(x)
