"""The label-free measures: their limits on collapsed representations (every rank, a handful of rows), and against an
independent implementation, reptrix (RankMe, alpha-ReQ, LiDAR; those tests skip without it)."""
import math
import warnings

import numpy as np
import pytest
import torch

from simsiam_collapse.collapse import collapse_auc, rankme, singular_values
from simsiam_collapse.measures import (
    ALPHA_REQ_MIN_RESOLVED,
    MEASURES,
    UndefinedMeasureWarning,
    alpha_req,
    covariance_eigenvalues,
    effective_rank,
    label_free_measures,
    lidar,
    lidar_matrix,
)

try:
    from reptrix import alpha as reptrix_alpha
    from reptrix import lidar as reptrix_lidar
    from reptrix import rankme as reptrix_rankme
except ImportError:
    reptrix_alpha = reptrix_lidar = reptrix_rankme = None
needs_reptrix = pytest.mark.skipif(reptrix_rankme is None, reason="pip install reptrix (a dev requirement)")


@pytest.fixture
def features():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2000, 128, generator=g, dtype=torch.float64) * torch.arange(1, 129, dtype=torch.float64) ** -0.7


@needs_reptrix
def test_rankme_of_the_covariance_eigenvalues_equals_reptrix(features):
    # reptrix's RankMe reads the PCA variance ratios (squared singular values of the centred features); ours, as
    # published (Garrido et al.), the uncentred singular values: the same formula on the same spectrum agrees to 1e-6
    assert rankme(covariance_eigenvalues(features)) == pytest.approx(reptrix_rankme.get_rankme(features), rel=1e-6)
    ours = rankme(singular_values(features, center=False))
    assert abs(ours - reptrix_rankme.get_rankme(features)) > 1  # the documented difference is not a rounding


@needs_reptrix
def test_alpha_req_equals_reptrix_over_the_same_range(features):
    eig = covariance_eigenvalues(features)
    ratios = (eig / eig.sum()).numpy()  # reptrix fits the PCA variance ratios: a constant factor, the same slope
    theirs = reptrix_alpha.get_powerlaw(ratios, np.arange(10, 100))[0]
    assert alpha_req(eig, range(10, 100)) == pytest.approx(theirs, rel=1e-6)
    assert alpha_req(eig) == pytest.approx(reptrix_alpha.get_powerlaw(ratios, np.arange(10, 100))[0], rel=1e-6)


def pca_ratios(matrix: torch.Tensor) -> torch.Tensor:
    "What reptrix takes the spectrum of: the explained-variance ratios of the matrix's rows, centred, as data."
    s = torch.linalg.svdvals(matrix - matrix.mean(0))
    return s ** 2 / (s ** 2).sum()


@needs_reptrix
def test_lidar_matrix_equals_reptrix_and_the_documented_difference():
    g = torch.Generator().manual_seed(1)
    n, k, d = 400, 4, 16
    views = (torch.randn(n, 1, d, generator=g) * torch.linspace(2, 0.1, d) + 0.3 * torch.randn(n, k, d, generator=g))
    views = views.double()
    theirs = reptrix_lidar.get_lidar(views.reshape(n * k, d), n, k, del_sigma_augs=k * 1e-6)
    # reptrix sums where we average (Sigma_b times n, Sigma_w times k): the same matrix up to a factor, and reptrix
    # then ranks the PCA ratios of that matrix (rows centred, squared), where LiDAR's paper takes its eigenvalues
    assert rankme(pca_ratios(lidar_matrix(views, delta=1e-6))) == pytest.approx(theirs, rel=1e-5)
    ours = lidar(views, delta=1e-6)
    assert 1 < ours < d and abs(ours - theirs) > 0.05 * d  # the difference is real, not rounding: say it, don't hide it


# --- every measure on degenerate spectra: the documented limits, never a crash that takes the others down ----------
D = 8


def rank_r_features(n, r, d=D, seed=0):
    "n x d float64 features of rank min(r, n) (uncentred): n x r Gaussian times r x d Gaussian."
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, r, generator=g, dtype=torch.float64) @ torch.randn(r, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, D - 1, D, 10 * D])
@pytest.mark.parametrize("r", range(D + 1))
def test_every_measure_has_its_limit_on_a_rank_r_representation(n, r):
    x = rank_r_features(n, r)
    if n < 2:
        with pytest.raises(ValueError, match="Need at least 2 feature vectors"):
            label_free_measures(x)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = label_free_measures(x)
    assert set(MEASURES) <= set(m) and m["feature_dim"] == D
    centred_rank = int(torch.linalg.matrix_rank(x - x.mean(0)))
    raw_rank = int(torch.linalg.matrix_rank(x))
    assert m["auc"] >= 1 - (max(centred_rank, 1) - 1) / (2 * D) - 1e-9
    assert m["auc"] <= 1 + 1e-12
    if centred_rank <= 1:
        assert m["auc"] == pytest.approx(1.0, abs=1e-9) and m["normalized_auc"] == pytest.approx(1.0, abs=1e-9)
    assert 1 - 1e-9 <= m["effective_rank"] <= max(centred_rank, 1) + 1e-6
    assert 1 - 1e-6 <= m["rankme"] <= max(raw_rank, 1) + 1e-3
    assert (m["nesum"] == 0) if raw_rank == 0 else (1 - 1e-9 <= m["nesum"] <= max(centred_rank, 1) + 1e-6)
    pr = m["participation_ratio"]
    assert (pr == 0) if raw_rank == 0 else (1 - 1e-9 <= pr <= max(centred_rank, 1) + 1e-6)
    assert m["std_l2"] >= 0
    if centred_rank < ALPHA_REQ_MIN_RESOLVED:
        assert math.isnan(m["alpha_req"])
        reasons = [str(w.message) for w in caught if issubclass(w.category, UndefinedMeasureWarning)]
        assert len(reasons) == 1 and f"collapsed to rank {centred_rank}" in reasons[0]
    else:
        assert math.isfinite(m["alpha_req"])


def test_constant_and_zero_features_give_the_limits_of_total_collapse():
    for x in (torch.zeros(50, D), torch.full((50, D), 3.0)):
        with pytest.warns(UndefinedMeasureWarning, match="alpha_req: alpha-ReQ is undefined"):
            m = label_free_measures(x)
        assert (m["auc"], m["normalized_auc"], m["effective_rank"], m["std_l2"]) == (1.0, 1.0, 1.0, 0.0)
        assert m["nesum"] == m["participation_ratio"] == 0.0 and math.isnan(m["alpha_req"])
        assert m["rankme"] == pytest.approx(1.0, abs=1e-3)  # 1, up to RankMe's epsilon


def test_flat_rank_r_reaches_the_auc_bound_and_effective_rank_r():
    # r equal singular values: AUC exactly 1 - (r - 1) / 2d, effective rank exactly r
    for r in range(1, D + 1):
        q, _ = torch.linalg.qr(torch.randn(200, D, dtype=torch.float64, generator=torch.Generator().manual_seed(r)))
        x = (q - q.mean(0))[:, :r] @ torch.eye(D, dtype=torch.float64)[:r]
        s = singular_values(x)
        s = torch.where(s > 1e-9, torch.ones_like(s), torch.zeros_like(s))  # the r nonzero values made equal
        assert collapse_auc(s) == pytest.approx(1 - (r - 1) / (2 * D), abs=1e-12)
        assert effective_rank(s) == pytest.approx(r, abs=1e-9)


def test_lidar_refuses_one_image_and_non_finite_views():
    views = torch.randn(20, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="N >= 2 images"):
        lidar(views[:1])
    views[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        lidar(views)
