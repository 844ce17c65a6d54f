"Orderings: the exact semantics of the paper's data orderings (11_orderings.ipynb states them)."
import numpy as np
import pytest

from simsiam_collapse.orderings import STRATEGIES, Ordering, check_ordering, chunk_usage, default_chunks

KW = dict(n=1003, epochs=10, batch_size=64, seed=3)


def _make(strategy, **kw):
    extra = dict(fraction=0.2) if strategy == "subset" else dict(switch_epoch=4) if strategy == "hybrid" else {}
    return Ordering(strategy, **{**KW, **extra, **kw})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_the_same_steps(strategy):
    o = _make(strategy)
    for e in range(o.epochs):
        batches = o.batches(e)
        assert len(batches) == 1003 // 64 and all(len(b) == 64 for b in batches)
        # the pool is reshuffled and repeated in whole batches: no image twice in a batch, nothing from outside the pool
        assert all(len(set(b)) == len(b) for b in batches) and set(o.epoch_indices(e)) <= set(o.pool(e))


def test_single_pass_covers_every_chunk_once():
    o = _make("single_pass")
    seen = [set(o.epoch_indices(e)) for e in range(o.epochs)]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])  # never revisits
    assert set().union(*seen) == set(range(o.n))  # covers all the data
    assert all(s == set(o.chunk(e)) for e, s in enumerate(seen))


def test_single_pass_with_fewer_chunks_than_epochs():
    o = _make("single_pass", chunks=5)
    assert [o.chunk_of_epoch(e) for e in range(10)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert set(o.epoch_indices(2)) <= set(o.chunk(1))
    with pytest.raises(ValueError, match=r"chunks must be an integer between 1 and the number of epochs \(10\)"):
        _make("single_pass", chunks=11)


def test_cumulative_draws_only_from_the_prefix_and_uniformly():
    o = _make("cumulative")
    for e in range(o.epochs):
        prefix = set(np.concatenate([o.chunk(c) for c in range(e + 1)]))
        assert set(o.epoch_indices(e)) <= prefix
    u = chunk_usage(o)
    assert np.allclose(u[9], 0.1, atol=0.02) and np.allclose(u[1, :2], 0.5, atol=0.02)


def test_subset_is_the_last_fraction_of_the_permutation():
    for percent in (7, 20, 100):  # the authors' slice of the last k % of N images: idx[-N * k // 100:] (rounds up)
        o = _make("subset", fraction=percent / 100)
        last = set(o.permutation()[-o.n * percent // 100:])
        assert all(set(o.epoch_indices(e)) <= last for e in range(o.epochs))
        # every image of the subset is used
        assert set().union(*(set(o.epoch_indices(e)) for e in range(o.epochs))) == last
    # smaller subsets are nested in larger ones, as the paper's fractions of one permutation are
    assert set(_make("subset", fraction=0.07).pool(0)) <= set(_make("subset", fraction=0.5).pool(0))


def test_hybrid_switches_at_its_epoch():
    o = _make("hybrid", switch_epoch=4)
    single, multi = _make("single_pass"), _make("multiple_pass")
    for e in range(10):
        ref = single if e < 4 else multi
        assert np.array_equal(o.epoch_indices(e), ref.epoch_indices(e))
    assert np.array_equal(_make("hybrid", switch_epoch=0).epoch_indices(3), multi.epoch_indices(3))
    assert np.array_equal(_make("hybrid", switch_epoch=10).epoch_indices(9), single.epoch_indices(9))


def test_same_seed_same_batches_other_seed_other_batches():
    a, b, c = _make("multiple_pass"), _make("multiple_pass"), _make("multiple_pass", seed=4)
    assert np.array_equal(a.epoch_indices(5), b.epoch_indices(5))
    assert not np.array_equal(a.epoch_indices(5), c.epoch_indices(5))
    assert not np.array_equal(a.epoch_indices(5), a.epoch_indices(6))


def test_rank_shards_make_up_the_global_batch():
    o = _make("cumulative")
    shards = [o.batches(2, rank=r, world_size=4) for r in range(4)]
    for step, batch in enumerate(o.batches(2)):
        assert np.array_equal(np.concatenate([s[step] for s in shards]), batch)
    with pytest.raises(ValueError, match="batch_size 64 does not divide by world_size 3"):
        o.batches(0, world_size=3)


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(strategy="shuffle"), "Unknown ordering 'shuffle'"),
        (dict(strategy="subset", fraction=0.0), r"fraction must be a number in \(0, 1\], got 0.0"),
        (dict(strategy="hybrid", switch_epoch=11), "switch_epoch must be an integer between 0 and epochs=10"),
        (dict(strategy="hybrid", switch_epoch=None), "switch_epoch must be an integer between"),
        (dict(strategy="multiple_pass", batch_size=2000), "batch_size must be an integer between 1 and the 1003"),
        (dict(strategy="single_pass", chunks=0), "chunks must be an integer between 1"),
        (dict(strategy="multiple_pass", n=1003.0), "n .the number of training images. must be a positive integer"),
        (dict(strategy="multiple_pass", epochs=2.5), "epochs must be an integer of at least 1, got 2.5"),
        (dict(strategy="subset", fraction=0.05), "the subset holds 51 of the 1003 images, fewer than a batch of 64"),
        (dict(strategy="single_pass", chunks=10, batch_size=128), "a chunk .10 chunks. holds 100 .* at most 7 chunks"),
    ],
)
def test_bad_values_name_themselves(bad, match):
    with pytest.raises(ValueError, match=match):
        Ordering(**{**KW, **bad})


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("n,batch_size,epochs", [(1003, 64, 10), (500, 100, 3), (777, 37, 7), (256, 256, 4)])
def test_a_batch_never_holds_the_same_image_twice(strategy, n, batch_size, epochs):
    extra = (
        dict(fraction=max(0.5, batch_size / n))
        if strategy == "subset"
        else dict(switch_epoch=epochs // 2)
        if strategy == "hybrid"
        else {}
    )
    if strategy in ("single_pass", "cumulative", "hybrid"): extra["chunks"] = max(1, min(epochs, n // batch_size))
    o = Ordering(strategy, n=n, epochs=epochs, batch_size=batch_size, seed=5, **extra)
    for e in range(epochs):
        assert all(len(np.unique(b)) == batch_size for b in o.batches(e))


def test_two_training_seeds_share_the_data_order_unless_asked():
    a, b = _make("single_pass", seed=0), _make("single_pass", seed=1)
    assert np.array_equal(a.permutation(), b.permutation())
    assert all(np.array_equal(a.chunk(c), b.chunk(c)) for c in range(a.num_chunks))
    assert not np.array_equal(a.epoch_indices(0), b.epoch_indices(0))  # the reshuffles inside a chunk follow the seed
    c = _make("single_pass", seed=0, order_seed=1)
    assert not np.array_equal(a.chunk(0), c.chunk(0))


# Boundaries, messages and the pinned data order, which the mutation run (tests/README.md) found untested.

def test_smallest_valid_settings_pass_and_the_defaults_are_valid():
    check_ordering("multiple_pass", 1, n=1, batch_size=1)
    check_ordering("subset", 3)  # the default fraction, 1.0, is valid
    check_ordering("hybrid", 4, switch_epoch=0, n=8, batch_size=8)  # all multiple pass: no chunk to fit a batch into
    with pytest.raises(ValueError, match="^epochs must be an integer of at least 1, got 0.$"):
        check_ordering("multiple_pass", 0)
    with pytest.raises(ValueError, match="^fraction must be a number in"):
        check_ordering("subset", 3, fraction="0.5")


@pytest.mark.parametrize("strategy,extra", [("cumulative", {}), ("single_pass", {}), ("hybrid", {"switch_epoch": 1})])
def test_every_continual_phase_needs_a_chunk_of_a_batch(strategy, extra):
    with pytest.raises(ValueError, match=r"^a chunk \(4 chunks\) holds 1 of the 4 images, fewer than a batch of 2: "
                                         r"use at most 2 chunks \(chunks=...\), or a batch size of at most 1.$"):
        check_ordering(strategy, 4, n=4, batch_size=2, **extra)


def test_a_subset_smaller_than_a_batch_names_the_smallest_fraction():
    with pytest.raises(ValueError, match="use a fraction of at least 0.1, or a batch size of at most 5"):
        check_ordering("subset", 3, fraction=0.05, n=100, batch_size=10)


def test_default_chunks_never_falls_below_one():
    assert default_chunks(n=10, epochs=8, batch_size=16) == 1
    assert default_chunks(n=8192, epochs=16, batch_size=128) == 16


def test_the_data_order_is_pinned():
    # Stored runs were trained on these orders: changing a seed constant silently changes every result, so the first
    # indices are pinned (numpy's PCG64 is stable across versions).
    o = Ordering("single_pass", n=1000, epochs=4, batch_size=50, seed=3)
    assert o.permutation()[:5].tolist() == np.random.default_rng([0, 7]).permutation(1000)[:5].tolist()
    rng = np.random.default_rng([3, 11, 2])
    assert o.epoch_indices(2)[:5].tolist() == rng.permutation(o.pool(2))[:5].tolist()
    with pytest.raises(ValueError, match=r"^epoch must be in \[0, 4\), got 4.$"):
        o.pool(4)


def test_chunk_usage_rows_are_shares_of_each_epoch():
    use = chunk_usage(Ordering("cumulative", n=600, epochs=6, batch_size=20, chunks=3))
    assert use.shape == (6, 3) and np.allclose(use.sum(1), 1)
    assert np.allclose(use[0], [1, 0, 0]) and use[-1].min() > 0
