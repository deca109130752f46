"""Nearest-neighbour search in matrix-product form, batched on the device.

Used for x_i* of Eq. 20 (the clean training image nearest to a noisy sample, searched over the whole
clean set) and for the bank statistics behind the default sigma_ker.
"""

from __future__ import annotations

import numpy as np
import torch

from lmppm_cli.core.pixels import as_floats, rows


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 as ||a||^2 - 2 a.b + ||b||^2, clamped at 0 against rounding. (M, D), (N, D) -> (M, N)."""
    d2 = a.pow(2).sum(1, keepdim=True) - 2.0 * a @ b.T + b.pow(2).sum(1).unsqueeze(0)
    return d2.clamp_min_(0.0)


@torch.no_grad()
def nearest(queries: torch.Tensor, pool: torch.Tensor, chunk: int = 8192, exclude: torch.Tensor | None = None):
    """Exact nearest pool row for each query: (indices (M,), squared distances (M,)).

    Queries go in blocks and the pool is scanned in chunks, `chunk` rows each, so memory is
    O(chunk^2) whatever M and N are; a uint8 pool (a streamed folder's memory map) is read and scaled
    one chunk at a time. `exclude` (M,): a pool row each query skips (itself, when queries are pool rows).
    """
    q = queries.flatten(1)
    found = [
        _nearest_block(q[i : i + chunk], pool, chunk, None if exclude is None else exclude[i : i + chunk])
        for i in range(0, len(q), chunk)
    ]
    if not found:
        return torch.zeros(0, dtype=torch.long, device=q.device), q.new_zeros(0)
    return torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])


def _nearest_block(q: torch.Tensor, pool: torch.Tensor, chunk: int, exclude: torch.Tensor | None):
    best_d = torch.full((q.shape[0],), float("inf"), device=q.device, dtype=q.dtype)
    best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, pool.shape[0], chunk):
        d2 = squared_distances(q, as_floats(pool[start : start + chunk].flatten(1), q.device))  # (m, chunk)
        if exclude is not None:
            cols = exclude.to(q.device) - start
            inside = (cols >= 0) & (cols < d2.shape[1])
            d2[inside.nonzero().squeeze(1), cols[inside]] = float("inf")
        d, i = d2.min(1)
        better = d < best_d
        best_d = torch.where(better, d, best_d)
        best_i = torch.where(better, i + start, best_i)
    return best_i, best_d


@torch.no_grad()
def nearest_k(queries: torch.Tensor, pool: torch.Tensor, k: int, chunk: int = 8192):
    """Exact k nearest pool rows for each query, scanning the pool in chunks: (indices (M, k), squared
    distances (M, k)), nearest first. Memory O(M * (chunk + k))."""
    q = queries.flatten(1)
    best_d = q.new_empty((q.shape[0], 0))
    best_i = torch.empty((q.shape[0], 0), dtype=torch.long, device=q.device)
    for start in range(0, pool.shape[0], chunk):
        d2 = squared_distances(q, as_floats(pool[start : start + chunk].flatten(1), q.device))
        cols = torch.arange(start, start + d2.shape[1], device=q.device).expand_as(d2)
        best_d, pick = torch.cat([best_d, d2], 1).topk(min(k, best_d.shape[1] + d2.shape[1]), dim=1, largest=False)
        best_i = torch.cat([best_i, cols], 1).gather(1, pick)
    return best_i, best_d


@torch.no_grad()
def nearest_approximate(queries: torch.Tensor, pool: torch.Tensor, projection: torch.Tensor, candidates: int = 32):
    """Cheaper nearest neighbour for large clean sets (an approximation, not exact).

    Both sides are projected to a few random dimensions (`projection`, (D, k), Johnson-Lindenstrauss),
    the `candidates` nearest in the projection are found, and only those are compared exactly.
    The true nearest row is missed when the projection ranks it below `candidates` others.
    """
    q = queries.flatten(1)
    p = pool.flatten(1)
    short = squared_distances(q @ projection, p @ projection)  # (M, N), k-dim work
    cand = short.topk(min(candidates, p.shape[0]), dim=1, largest=False).indices  # (M, c)
    exact = (p[cand] - q.unsqueeze(1)).pow(2).sum(-1)  # (M, c)
    d, j = exact.min(1)
    return cand.gather(1, j.unsqueeze(1)).squeeze(1), d


class FaissIndex:
    """Approximate nearest pool row through FAISS: an HNSW graph over the flattened images, PCA-reduced
    to at most `dims` dimensions, whose `candidates` nearest are then compared exactly in full space.
    Built once (the clean pool does not change while training); searched on the CPU. The PCA is fitted
    on at most `fit_rows` evenly spaced images, fewer where they would take more than FIT_BYTES, and
    the graph is filled in chunks, so a pool memory-mapped from disk is never read into memory whole."""

    FIT_BYTES = 64 * 2**20  # also keeps FAISS on its fast Gram-matrix PCA for wide images (64x64 RGB: 1,365 rows)
    RERANK_BYTES = 64 * 2**20  # candidates compared exactly at a time

    def __init__(
        self,
        pool: torch.Tensor,
        dims: int = 64,
        links: int = 32,
        ef_search: int = 128,
        fit_rows: int = 50_000,
        chunk: int = 8192,
    ):
        import faiss  # optional: pip install 'lmppm[scale]'

        self.pool = pool.flatten(1)
        cpu = torch.device("cpu")
        n, width = self.pool.shape
        self.pca = None
        if width > dims and n >= 4 * dims:  # PCA needs more images than output dimensions
            self.pca = faiss.PCAMatrix(width, dims)
            fit_rows = min(n, fit_rows, max(4 * dims, self.FIT_BYTES // (4 * width)))
            self.pca.train(rows(self.pool, torch.linspace(0, n - 1, fit_rows).long(), cpu).numpy())
        self.index, self.ef_search = faiss.IndexHNSWFlat(dims if self.pca is not None else width, links), ef_search
        for start in range(0, n, chunk):
            self.index.add(self._reduce(as_floats(self.pool[start : start + chunk], cpu)))

    def _reduce(self, x: torch.Tensor) -> np.ndarray:
        array = x.detach().float().cpu().numpy()
        return self.pca.apply(array) if self.pca is not None else array

    @torch.no_grad()
    def search(self, queries: torch.Tensor, candidates: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (M,), squared distances (M,)) of the approximate nearest pool rows."""
        idx, d2 = self.search_k(queries, 1, candidates)
        return idx[:, 0], d2[:, 0]

    @torch.no_grad()
    def search_k(self, queries: torch.Tensor, k: int, candidates: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (M, k), squared distances (M, k)), nearest first: the graph's max(k, candidates)
        candidates, compared exactly in full space."""
        q = queries.flatten(1)
        c = min(max(k, candidates), self.pool.shape[0])
        self.index.hnsw.efSearch = max(self.ef_search, c)  # the graph search keeps at least c in its list
        _, found = self.index.search(self._reduce(q), c)
        cand = torch.from_numpy(found).to(q.device)  # (M, c)
        block = max(1, self.RERANK_BYTES // (4 * c * q.shape[1]))  # queries whose candidates fit the budget
        exact = (
            torch.cat(
                [
                    (rows(self.pool, cand[i : i + block], q.device) - q[i : i + block].unsqueeze(1)).pow(2).sum(-1)
                    for i in range(0, len(q), block)
                ]
            )
            if len(q)
            else q.new_zeros(0, c)
        )  # (M, c)
        d2, j = exact.topk(min(k, cand.shape[1]), dim=1, largest=False)
        return cand.gather(1, j), d2


def faiss_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None
