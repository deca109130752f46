"""The kernel mean of Eq. 21 over a large bank (issue 11): exact (streamed) against top-k through a
FAISS index, in time per batch and in error against the exact result.

The bank is the bundled `mnist` model's encoder applied to --size digits: mnist-5k's 3,500 training
digits under random affine warps (torchvision), as a model trained on that many images would hold.
The queries are 64 held-out digits with noise 0.4, encoded by the same model. sigma_ker is the default a model trained on this bank
would start from (bank.default_sigma_ker), times the model's calibrated multiple of its own default.

    uv run python examples/bank_scale.py [--size 1000000] [--k 64]
"""

from __future__ import annotations

import argparse
import time

import torch

import lmppm_cli
from lmppm_cli.core.bank import default_sigma_ker, kernel_mean
from lmppm_cli.core.neighbours import FaissIndex
from lmppm_cli.files.data import mnist_5k


def timed(fn, rounds: int = 3):
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        out = fn()
    return out, (time.perf_counter() - start) / rounds


@torch.no_grad()
def warped_bank(net, size: int, chunk: int = 10_000) -> torch.Tensor:
    """F(x) of `size` warped training digits, made and encoded a chunk at a time."""
    from torchvision.transforms import v2

    digits = mnist_5k().train.images
    warp = v2.RandomAffine(degrees=12, translate=(0.08, 0.08), scale=(0.9, 1.1), shear=8)
    parts = []
    for start in range(0, size, chunk):
        x = torch.stack([warp(digits[i % len(digits)]) for i in range(start, min(size, start + chunk))])
        parts.append(net.autoencoder.encode(x)[0])
    return torch.cat(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--k", default="64,1024")
    args = ap.parse_args()
    torch.manual_seed(0)
    net = lmppm_cli.load("mnist", device="cpu").net
    base = net.bank
    bank = warped_bank(net, args.size)
    clean = mnist_5k().test.images[:64]
    with torch.no_grad():
        z = net.autoencoder.encode((clean + 0.4 * torch.randn(clean.shape)).clamp(0, 1))[0]
    sigma = net.config.flow.sigma_ker / default_sigma_ker(base) * default_sigma_ker(bank)
    exact, t_exact = timed(lambda: kernel_mean(z, bank, sigma))
    start = time.perf_counter()
    index = FaissIndex(bank)
    t_build = time.perf_counter() - start
    print(
        f"bank {args.size:,} x {bank.shape[1]}, batch {len(z)}, sigma_ker {sigma:.4f}, {torch.get_num_threads()} threads"
    )
    print(f"exact (streamed) kernel mean: {t_exact:.3f} s per batch; FAISS HNSW index built in {t_build:.1f} s")
    for k in (int(v) for v in args.k.split(",")):
        for name, idx in (("FAISS HNSW", index), ("exact scan", None)):
            approx, t = timed(lambda: kernel_mean(z, bank, sigma, top_k=k, index=idx))
            error = float((approx - exact).norm(dim=1).mean() / (exact - z).norm(dim=1).mean())
            print(
                f"top-{k} through {name}: {t:.4f} s per batch ({t_exact / t:.1f}x faster), {100 * error:.2f}% of the kernel step off"
            )


if __name__ == "__main__":
    main()
