import math

import torch

from lmppm_cli.core.neighbours import nearest, nearest_approximate, nearest_k, squared_distances


def test_squared_distances_match_cdist(rng):
    a, b = torch.randn(7, 5, generator=rng, dtype=torch.float64), torch.randn(9, 5, generator=rng, dtype=torch.float64)
    torch.testing.assert_close(squared_distances(a, b), torch.cdist(a, b).pow(2))


def test_nearest_is_exact_in_any_chunking(rng):
    pool = torch.randn(101, 3, 4, 4, generator=rng)
    queries = pool[torch.tensor([5, 50, 99])] + 0.01 * torch.randn(3, 3, 4, 4, generator=rng)
    brute = torch.cdist(queries.flatten(1), pool.flatten(1)).argmin(1)
    for chunk in (7, 64, 1000):
        idx, d2 = nearest(queries, pool, chunk=chunk)
        assert idx.tolist() == brute.tolist() == [5, 50, 99]
        assert (d2 >= 0).all()


def test_nearest_excluding_self_finds_the_other_point(rng):
    pool = torch.tensor([[0.0], [1.0], [1.5], [10.0]])
    idx, d2 = nearest(pool, pool, chunk=3, exclude=torch.arange(len(pool)))
    assert idx.tolist() == [1, 2, 1, 2]
    torch.testing.assert_close(d2, torch.tensor([1.0, 0.25, 0.25, 8.5**2]))


def test_approximate_search_finds_near_duplicates(rng):
    pool = torch.randn(500, 64, generator=rng)
    queries = pool[:40] + 0.01 * torch.randn(40, 64, generator=rng)
    projection = torch.randn(64, 16, generator=rng) / math.sqrt(16)
    idx, _ = nearest_approximate(queries, pool, projection, candidates=16)
    assert idx.tolist() == list(range(40))


def test_k_nearest_matches_a_full_sort_in_any_chunking(rng):
    pool = torch.randn(300, 7, generator=rng)
    q = torch.randn(9, 7, generator=rng)
    d2 = torch.cdist(q, pool).pow(2)
    want_d, want_i = d2.sort(dim=1)
    for chunk in (1000, 50, 7):
        idx, dist = nearest_k(q, pool, 10, chunk=chunk)
        assert torch.equal(idx, want_i[:, :10])
        torch.testing.assert_close(dist, want_d[:, :10], atol=1e-4, rtol=1e-4)


def test_faiss_index_finds_the_exact_nearest_image_for_noisy_real_digits():
    """FAISS HNSW over PCA-reduced digits, exact re-rank of its candidates: the x* of noisy held-out
    digits agrees with the exact search for at least 95% of them (issue 11's bar)."""
    from lmppm_cli.core.neighbours import FaissIndex
    from lmppm_cli.files.data import mnist_5k

    data = mnist_5k()
    pool = data.train.images.flatten(1)
    queries = (
        data.test.images[:300] + 0.3 * torch.randn(300, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1)
    exact, _ = nearest(queries, pool)
    found, d2 = FaissIndex(pool).search(queries)
    assert found.shape == (300,) and (found == exact).float().mean() >= 0.95
    torch.testing.assert_close(d2, (pool[found] - queries.flatten(1)).pow(2).sum(1))
