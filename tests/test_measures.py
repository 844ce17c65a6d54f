"The label-free measures against an independent implementation: reptrix (RankMe, alpha-ReQ, LiDAR), skipped without it."
import numpy as np
import pytest
import torch

from simsiam_collapse.collapse import rankme, singular_values
from simsiam_collapse.measures import alpha_req, covariance_eigenvalues, lidar, lidar_matrix

reptrix = pytest.importorskip("reptrix", reason="pip install reptrix (a dev requirement) for these cross-checks")
from reptrix import alpha as reptrix_alpha  # noqa: E402
from reptrix import lidar as reptrix_lidar  # noqa: E402
from reptrix import rankme as reptrix_rankme  # noqa: E402


@pytest.fixture
def features():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2000, 128, generator=g, dtype=torch.float64) * torch.arange(1, 129, dtype=torch.float64) ** -0.7


def test_rankme_of_the_covariance_eigenvalues_equals_reptrix(features):
    # reptrix's RankMe reads the PCA variance ratios (squared singular values of the centred features); ours, as
    # published (Garrido et al.), the uncentred singular values: the same formula on the same spectrum agrees to 1e-6
    assert rankme(covariance_eigenvalues(features)) == pytest.approx(reptrix_rankme.get_rankme(features), rel=1e-6)
    ours = rankme(singular_values(features, center=False))
    assert abs(ours - reptrix_rankme.get_rankme(features)) > 1  # the documented difference is not a rounding


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
