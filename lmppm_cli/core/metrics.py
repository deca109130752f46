"""Metrics from torchmetrics: SSIM (data range 1) and PSNR per image, and the Frechet distance of the
paper's domain FID on the features of a small classifier trained by the project."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image.fid import FrechetInceptionDistance

PSNR_CAP = 100.0  # dB; an image equal to its reference would otherwise score inf and so would the mean


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 1, capped at 100 dB. (B, C, H, W) x 2 -> (B,)."""
    values = peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3))
    return values.clamp(max=PSNR_CAP)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian window 11, sigma 1.5, data range 1). -> (B,)."""
    values = structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0, reduction="none")
    assert isinstance(values, torch.Tensor)  # a tuple only when asked for the full image
    return values


class _GivenFeatures(nn.Module):
    """Lets torchmetrics' FID take features we have already computed (with the domain classifier)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets (N, F), by torchmetrics' FID."""
    fid = FrechetInceptionDistance(feature=_GivenFeatures(real.shape[1]))
    fid.update(real.double().cpu(), real=True)
    fid.update(fake.double().cpu(), real=False)
    return max(0.0, fid.compute().item())


@torch.no_grad()
def classifier_outputs(classifier, images: torch.Tensor, batch_size: int = 500):
    """(penultimate features (N, F), predicted labels (N,)) of the domain classifier, eval mode."""
    classifier.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch_size):
        f = classifier.features(images[i : i + batch_size].to(classifier.device))
        feats.append(f.cpu())
        preds.append(classifier.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def domain_fid(real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """The paper's MNIST FID on classifier features: (overall, mean over classes of the per-class FID,
    classes grouped by their true label; a class with one image has no FID and is left out, and with
    no class of two the mean is NaN)."""
    classes = [c for c in labels.unique().tolist() if int((labels == c).sum()) > 1]
    per_class = [frechet_distance(real[labels == c], fake[labels == c]) for c in classes]
    return frechet_distance(real, fake), sum(per_class) / len(per_class) if per_class else float("nan")


def inception_fid_missing() -> str | None:
    """None when torchmetrics' Inception FID can run here, else one sentence saying why it cannot."""
    try:
        FrechetInceptionDistance(feature=2048)
    except Exception as exc:  # no torch-fidelity, or its Inception-v3 weights cannot be fetched
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"Inception FID is not reported: torchmetrics' FrechetInceptionDistance cannot load its Inception-v3 network here ({reason})."
    return None


def inception_fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID on Inception-v3 features (torchmetrics; grayscale repeated to RGB, images in [0, 1])."""
    fid = FrechetInceptionDistance(feature=2048, normalize=True)
    rgb = lambda x: x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    fid.update(rgb(real).float().cpu(), real=True)
    fid.update(rgb(fake).float().cpu(), real=False)
    return max(0.0, fid.compute().item())
