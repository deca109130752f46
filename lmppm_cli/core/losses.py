"""The LMPPM training loss, Eq. 20."""

from __future__ import annotations

import torch

from lmppm_cli.core.flow import latent_shift
from lmppm_cli.core.train_config import PIXEL_LOSSES, TERM_NAMES, LossWeights

__all__ = ["PIXEL_LOSSES", "TERM_NAMES", "LossWeights", "denoising_error", "lmppm_loss"]


def lmppm_loss(autoencoder, distance, x_clean, x_noisy, x_star, weights: LossWeights):
    """Eq. 20, each sum taken as a mean over the batch. Returns (total, {term name: value}).

    Notation -> paper: x_noisy = x_i (noisy samples, z_i = F(x_i) not in S), x_clean = x_i^clean
    (F(x_clean) in S), x_star = x_i* (nearest clean training image to x_i), z_star = F(x_i*).
    Terms: (1) (D(z_i) - ||z_i - z_i*||)^2; (2) ||x^clean - G(F(x^clean))||^2; (3) D(F(x^clean))^2;
    (4) (D - |D|)^2 over clean and noisy latents; (5) ||z_shift - z*||; (6) ||G(z_shift) - x*||.
    Norms are Euclidean over all pixels / latent coordinates of a sample, as written in Eq. 20.
    Beyond the paper, (7) ||x^clean - G(F(x_i))||^2 (the DAE's loss) makes the flow's starting point
    z^1 = F(x_i) itself a denoised latent; it is computed only when its weight is not 0.
    """
    z_clean, skips_clean = autoencoder.encode(x_clean)  # (B, d)
    z_noisy, skips_noisy = autoencoder.encode(x_noisy)  # (B, d)
    z_star, _ = autoencoder.encode(x_star)  # (B, d)
    d_noisy = distance(z_noisy)  # (B,)
    d_clean = distance(z_clean)  # (B,)
    z_shift = latent_shift(distance, z_noisy, create_graph=True)  # (B, d)
    d_all = torch.cat([d_noisy, d_clean])
    terms = {
        "distance": (d_noisy - (z_noisy - z_star).norm(dim=1)).pow(2).mean(),
        "recon": (x_clean - autoencoder.decode(z_clean, skips_clean)).pow(2).flatten(1).sum(1).mean(),
        "boundary": d_clean.pow(2).mean(),
        "positivity": (d_all - d_all.abs()).pow(2).mean(),
        "shift": (z_shift - z_star).norm(dim=1).mean(),
        "shift_recon": (autoencoder.decode(z_shift, skips_noisy) - x_star).flatten(1).norm(dim=1).mean(),
    }
    if weights.denoise:
        terms["denoise"] = denoising_error(autoencoder, z_noisy, skips_noisy, x_clean)
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, terms


CHARBONNIER_EPS = 1e-3
RELATIVE_FLOOR = 2 / 255  # noise below two 8-bit steps counts as none
PSNR_FLOOR = 0.5 / 255  # an error below half an 8-bit step counts as none (caps a crop at 54 dB)


def denoising_error(autoencoder, z_noisy, skips_noisy, x_clean, kind: str = "l2", x_noisy=None) -> torch.Tensor:
    """||x^clean - G(F(x_i))||^2 summed over pixels, mean over the batch: the DAE's loss, and term (7).
    `kind` (not in the paper, for the DAE): l1 sums |.|, charbonnier sqrt(.^2 + eps^2) instead;
    relative divides each sample's squared error by its input's, ||x_i - x^clean||^2 (plus a floor of
    RELATIVE_FLOOR per pixel): the error left as a share of the noise, so that every noise level counts
    alike, as in a mean of PSNRs, where plain L2 is ruled by the strongest noise of the batch; psnr is
    that mean of PSNRs itself, -10 log10 of each sample's mean squared error (plus PSNR_FLOOR^2), negated
    and averaged (HINet's PSNR loss): each sample's gradient is its L2 gradient divided by its own error,
    so a crop gains as much from a dB at low noise as at high noise."""
    diff = autoencoder.decode(z_noisy, skips_noisy).float() - x_clean
    if kind == "psnr":
        mse = diff.pow(2).flatten(1).mean(1) + PSNR_FLOOR**2
        return (10 * torch.log10(mse)).mean()
    if kind == "relative":
        noise = (x_noisy.float() - x_clean).pow(2).flatten(1).sum(1) + RELATIVE_FLOOR**2 * diff[0].numel()
        return (diff.pow(2).flatten(1).sum(1) / noise).mean()
    if kind == "l1":
        per_pixel = diff.abs()
    elif kind == "charbonnier":
        per_pixel = (diff.pow(2) + CHARBONNIER_EPS**2).sqrt()
    else:
        per_pixel = diff.pow(2)
    return per_pixel.flatten(1).sum(1).mean()
