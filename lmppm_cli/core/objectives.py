"""What each method trains: its model, optimiser groups, loss per batch, and what it adds when the
run ends (bank, calibrated defaults, test accuracy). The training loop in train.py drives any of them;
the method registry (lmppm_cli/methods) says which objective each method trains. Each takes
(config, data, tcfg, device, base): `base` a loaded model whose F and G start the run (--init), or
the DAE an LDM is built on.

Every objective is an `Objective` (core/objective.py): its interface, with the defaults of a method
that lacks a part.
"""

from __future__ import annotations

import dataclasses
import math
from typing import cast

import torch
from torch.nn import functional as F
from torchvision.transforms import v2

from lmppm_cli.core.bank import default_sigma_ker, kernel_mean
from lmppm_cli.core.calibrate import ALPHAS, GRIDS, calibrate_flow
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.losses import denoising_error, lmppm_loss
from lmppm_cli.core.models import LMPPM, DigitClassifier, encode_all
from lmppm_cli.core.models.growth import can_grow, grow
from lmppm_cli.core.models.unet import UNetAutoencoder
from lmppm_cli.core.neighbours import FaissIndex, faiss_available, nearest, nearest_approximate
from lmppm_cli.core.noise import noisy, training_pair
from lmppm_cli.core.objective import Objective
from lmppm_cli.core.pixels import place, rows

AUTO_EXACT_LIMIT = 20_000  # pool size up to which `auto` searches exactly (chunked, on the device)
RECALL_QUERIES = 256


class NearestClean:
    """x_i* of Eq. 20: the clean image nearest to each noisy sample, over a whole clean pool.

    exact: chunked search on the device (memory bounded by the chunk). approximate: random projection
    and exact re-rank. faiss: a FAISS HNSW index (neighbours.FaissIndex). auto: exact up to
    AUTO_EXACT_LIMIT images, else faiss when installed, else approximate; `reason` says which and why.
    An approximate mode measures its recall of the exact x* on noisy pool images at once (`recall`).
    The pool may be a streamed folder's uint8 memory map; x* then comes back as floats on `device`."""

    def __init__(self, pool: torch.Tensor, mode: str, generator: torch.Generator, sigma: float = 0.4, device=None):
        self.pool, self.device = pool, device or pool.device
        self.flat = pool.flatten(1)
        self.mode, self.reason = self._pick(mode, len(pool), pool.dtype == torch.uint8)
        k = min(64, self.flat.shape[1])
        self.projection = torch.randn(self.flat.shape[1], k, generator=generator, device=generator.device) / math.sqrt(
            k
        )
        self.index = FaissIndex(pool) if self.mode == "faiss" else None
        self.recall = None if self.mode == "exact" else self._recall(generator, sigma)

    @staticmethod
    def _pick(mode: str, n: int, streamed: bool = False) -> tuple[str, str]:
        if mode == "faiss" and not faiss_available():
            raise LmppmError("the faiss neighbour search needs FAISS: pip install 'lmppm[scale]' (faiss-cpu).")
        projected = mode == "approximate" or (mode == "auto" and n > AUTO_EXACT_LIMIT and not faiss_available())
        if streamed and projected:
            raise LmppmError(
                "a streamed folder finds x* by the exact or the faiss search (pip install 'lmppm[scale]'), not by random projection."
            )
        if mode != "auto":
            return mode, f"{mode}, as asked"
        if n <= AUTO_EXACT_LIMIT:
            return "exact", f"exact: {n} clean images, at most {AUTO_EXACT_LIMIT:,} are searched exactly"
        if faiss_available():
            return "faiss", f"faiss: {n} clean images, more than {AUTO_EXACT_LIMIT:,}"
        return (
            "approximate",
            f"approximate: {n} clean images, more than {AUTO_EXACT_LIMIT:,}, and FAISS is not installed",
        )

    def _recall(self, generator: torch.Generator, sigma: float) -> float:
        """Share of noisy pool images whose approximate x* is the exact one."""
        pick = torch.randperm(len(self.pool), generator=generator, device=generator.device)[:RECALL_QUERIES]
        queries = noisy(rows(self.pool, pick, self.device), sigma, generator)
        return float((self(queries, exact=True) == self(queries)).all(-1).flatten(1).all(1).float().mean())

    def __call__(self, x_noisy: torch.Tensor, exact: bool = False) -> torch.Tensor:
        if exact or self.mode == "exact":
            idx, _ = nearest(x_noisy, self.flat)
        elif self.index is not None:  # faiss
            idx, _ = self.index.search(x_noisy)
        else:
            idx, _ = nearest_approximate(x_noisy, self.flat, self.projection)
        return rows(self.pool, idx, x_noisy.device)

    def describe(self) -> str:
        measured = (
            ""
            if self.recall is None
            else f"; recall of the exact x* on {RECALL_QUERIES} noisy training images: {100 * self.recall:.1f}%"
        )
        return f"nearest clean image x* ({len(self.pool)} images): {self.reason}{measured}"


class LmppmObjective(Objective):
    """Eq. 20 with x* searched over the training images (over train + validation when validating)."""

    model: LMPPM

    def __init__(self, config, data, tcfg, device, base=None):
        self.tcfg = tcfg
        self.model = LMPPM(config)
        self.model.to(device)
        if base is not None:
            warm_start(self.model, base)
        self.val, self.device = place(data.val.images, device), device
        self.gen = torch.Generator(device).manual_seed(tcfg.seed + 4)
        self.new_training_images(place(data.train.images, device), data.joint)
        self.notes = (self.nearest_train.describe(),)

    def new_training_images(self, train: torch.Tensor, joint: torch.Tensor | None = None) -> None:
        """x* is searched over these training images (over them and the validation images when validating);
        a dataset that draws new images every epoch (photo-crops) calls this each epoch."""
        joint = joint if joint is not None else torch.cat([train, self.val])  # train then validation images
        sigma = self.tcfg.reference_sigma
        self.nearest_train = NearestClean(train, self.tcfg.neighbours, self.gen, sigma, self.device)
        self.nearest_all = NearestClean(joint, self.tcfg.neighbours, self.gen, sigma, self.device)

    def param_groups(self):
        d_group = {"params": self.model.distance.parameters(), "lr": self.tcfg.lr_distance}
        if self.tcfg.freeze_init:
            self.model.autoencoder.requires_grad_(False)
            return [d_group]
        return [{"params": self.model.autoencoder.parameters(), "lr": self.tcfg.lr}, d_group]

    def train_mode(self):
        """Training mode; a frozen F/G stays in eval mode (batch-norm statistics, skip dropout unchanged)."""
        self.model.train()
        if self.tcfg.freeze_init:
            self.model.autoencoder.eval()

    def loss(self, x, labels, generator, validation: bool, share=(0, 1)):
        x_noisy, x = training_pair(x, self.tcfg.noise, generator, share)
        x_star = (self.nearest_all if validation else self.nearest_train)(x_noisy)
        return lmppm_loss(self.model.autoencoder, self.model.distance, x, x_noisy, x_star, self.tcfg.weights)

    def finish(self, loop) -> dict:
        return _bank_and_flow(self.model, loop, ALPHAS)


def warm_start(model: LMPPM, source) -> None:
    """Start F and G from the autoencoder of another (loaded) model, e.g. a trained DAE of the same
    architecture; D starts fresh. Not in the paper: a warm start for the joint loss of Eq. 20, or a
    DAE's continued training (a new schedule or noise draw). A U-Net with narrower levels or shallower
    blocks is grown into the one being trained, computing the same function at the start (models/growth.py)."""
    if source.config.autoencoder == model.config.autoencoder:
        model.autoencoder.load_state_dict(source.autoencoder.state_dict())
    elif can_grow(source.config.autoencoder, model.config.autoencoder):
        grow(cast(UNetAutoencoder, model.autoencoder), cast(UNetAutoencoder, source.autoencoder))  # can_grow: U-Nets
    else:
        raise LmppmError(
            "the starting model's autoencoder differs from the one being trained (architecture, size or widths; "
            "a U-Net may only be grown wider or deeper)."
        )


class DaeObjective(Objective):
    """The DAE baseline: the same autoencoder, L2 from noisy to clean, the same noise."""

    model: LMPPM

    def __init__(self, config, data, tcfg, device, base=None):
        self.tcfg = tcfg
        self.model = LMPPM(config, distance=False)
        self.model.to(device)
        if base is not None:
            warm_start(self.model, base)

    def param_groups(self):
        return [{"params": self.model.autoencoder.parameters(), "lr": self.tcfg.lr}]

    def loss(self, x, labels, generator, validation: bool, share=(0, 1)):
        ae = self.model.autoencoder
        x_noisy, x = training_pair(x, self.tcfg.noise, generator, share)
        z, skips = ae.encode(x_noisy)
        recon = denoising_error(ae, z, skips, x, self.tcfg.loss, x_noisy)
        return recon, {"recon": recon}

    def finish(self, loop) -> dict:
        """The bank of DAE latents and a kernel-only flow (alpha = 0): Ablation_dae."""
        return _bank_and_flow(self.model, loop, (0.0,))


def _bank_and_flow(model: LMPPM, loop, alphas) -> dict:
    """S = F(train images), the base sigma_ker, the top-k kernel mean's error, and (unless turned off)
    the calibrated flow defaults."""
    model.build_bank(loop.train_x)
    flow = dataclasses.replace(model.config.flow, sigma_ker=default_sigma_ker(model.bank))
    topk = top_k_error(model, loop.calibration_images()[:TOP_K_QUERIES], flow.sigma_ker)
    if alphas == (0.0,):
        flow = dataclasses.replace(flow, alpha=0.0)
    table = []
    if loop.tcfg.calibrate:
        gen = torch.Generator(loop.device).manual_seed(loop.tcfg.seed + 3)
        model.config = dataclasses.replace(model.config, flow=flow)
        grid_alphas, betas, steps, multipliers = GRIDS[loop.tcfg.calibration_grid]
        alphas = alphas if alphas == (0.0,) else grid_alphas
        images, sigma = loop.calibration_images(), loop.tcfg.reference_sigma
        flow, table = calibrate_flow(
            model,
            images,
            sigma,
            gen,
            alphas,
            betas,
            multipliers,
            steps,
            min_gain=loop.tcfg.min_flow_gain,
            levels=loop.tcfg.calibration_noise,
            on_setting=loop.progress.on_calibration,
        )
    shared = {k: getattr(flow, k) for k in ("sigma_ker", "schedule", "adaptive", "top_k")}  # generation's kernel
    model.config = dataclasses.replace(
        model.config, flow=flow, generation=dataclasses.replace(model.config.generation, **shared)
    )
    return {
        "flow": dataclasses.asdict(flow),
        "top_k_kernel_mean": topk,
        "calibration_top": sorted(table, key=lambda r: -r["worst"])[:10],
    }


TOP_K, TOP_K_QUERIES = 64, 256


@torch.no_grad()
def top_k_error(model: LMPPM, clean: torch.Tensor, sigma_ker: float) -> dict:
    """How far the top-k kernel mean (restore --top-k; through the bank's FAISS index where it has one)
    lands from the exact Eq. 21 at validation latents: mean ||z_bar_k - z_bar|| / mean ||z_bar - z||,
    i.e. relative to the length of the kernel step."""
    z = encode_all(model.autoencoder, clean)
    exact = kernel_mean(z, model.bank, sigma_ker)
    index = model.bank_index()
    approx = kernel_mean(z, model.bank, sigma_ker, top_k=TOP_K, index=index)
    error = (approx - exact).norm(dim=1).mean() / (exact - z).norm(dim=1).mean().clamp_min(1e-12)
    return {
        "k": TOP_K,
        "search": "faiss" if index is not None else "exact scan",
        "queries": len(z),
        "relative_error": float(error),
    }


class ClassifierObjective(Objective):
    """Cross-entropy on labelled clean images, with small random affine jitter while training."""

    model: DigitClassifier

    def __init__(self, config, data, tcfg, device, base=None):
        if data.train.labels is None:
            raise LmppmError("the classifier needs labelled data (mnist-5k or mnist), not a folder of images.")
        self.tcfg = tcfg
        self.model = DigitClassifier(config)
        self.model.to(device)
        self.jitter = v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1))

    def param_groups(self):
        return [{"params": self.model.parameters(), "lr": self.tcfg.lr}]

    def loss(self, x, labels, generator, validation: bool, share=(0, 1)):
        if not validation:
            x = self._jitter(x, generator)
        logits = self.model(x)
        ce = F.cross_entropy(logits, labels)
        return ce, {"cross_entropy": ce, "error_rate": (logits.argmax(1) != labels).float().mean()}

    def _jitter(self, x, generator):
        seeds = torch.randint(0, 2**62, (len(x),), generator=generator, device=generator.device).tolist()
        out = []
        for img, seed in zip(x, seeds):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out.append(self.jitter(img))
        return torch.stack(out)

    def finish(self, loop) -> dict:
        """Accuracy on the held-out test split (on validation where the data has no test split)."""
        split = loop.data.test if loop.data.test is not None and loop.data.test.labels is not None else loop.data.val
        self.model.eval()
        with torch.no_grad():
            x, y = split.images.to(loop.device), split.labels.to(loop.device)
            pred = torch.cat([self.model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])
        accuracy = (pred == y).float().mean().item()
        return {"test_accuracy": accuracy, "test_images": len(y)}
