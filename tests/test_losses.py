import torch
from conftest import blob_images, tiny_config

from lmppm_cli.core.flow import latent_shift
from lmppm_cli.core.losses import TERM_NAMES, LossWeights, lmppm_loss
from lmppm_cli.core.models import LMPPM
from lmppm_cli.core.neighbours import nearest


def _batch(rng, n=8):
    x = blob_images(n, seed=5)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=rng)).clamp(0, 1)
    return x, noisy


def test_terms_match_eq20_by_hand(rng):
    torch.manual_seed(0)
    model = LMPPM(tiny_config())
    ae, dist = model.autoencoder, model.distance
    x, noisy = _batch(rng)
    star = x.flip(0)
    _, terms = lmppm_loss(ae, dist, x, noisy, star, LossWeights())
    with torch.no_grad():
        zc, zn, zs = ae.encode(x)[0], ae.encode(noisy)[0], ae.encode(star)[0]
        dn, dc = dist(zn), dist(zc)
    shift = latent_shift(dist, zn).detach()
    d_all = torch.cat([dn, dc])
    expected = {
        "distance": ((dn - (zn - zs).norm(dim=1)) ** 2).mean(),
        "recon": ((x - ae.decode(zc)) ** 2).sum((1, 2, 3)).mean(),
        "boundary": (dc**2).mean(),
        "positivity": ((d_all - d_all.abs()) ** 2).mean(),
        "shift": (shift - zs).norm(dim=1).mean(),
        "shift_recon": (ae.decode(shift) - star).flatten(1).norm(dim=1).mean(),
    }
    for name in TERM_NAMES:
        torch.testing.assert_close(terms[name].detach(), expected[name].detach(), rtol=1e-4, atol=1e-5)


def test_weights_scale_terms_and_every_network_gets_gradients(rng):
    torch.manual_seed(0)
    model = LMPPM(tiny_config())
    x, noisy = _batch(rng)
    total, terms = lmppm_loss(model.autoencoder, model.distance, x, noisy, x, LossWeights(2, 0, 0, 0, 0, 0))
    torch.testing.assert_close(total, 2 * terms["distance"])
    total, _ = lmppm_loss(model.autoencoder, model.distance, x, noisy, x, LossWeights())
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_short_fit_puts_d_near_zero_on_the_bank_and_at_the_distance_off_it(rng):
    """Terms (1), (3), (4) of Eq. 20 define D: fitted through `lmppm_loss` with F and G frozen, D is ~0
    on bank points F(x_clean) and ~||z - z*|| on noisy latents."""
    torch.manual_seed(0)
    model = LMPPM(tiny_config())
    clean = blob_images(64, seed=7)
    weights = LossWeights(distance=1, recon=0, boundary=1, positivity=1, shift=0, shift_recon=0)
    opt = torch.optim.Adam(model.distance.parameters(), lr=3e-3)
    for _ in range(400):
        noisy = (clean + 0.5 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
        star = clean[nearest(noisy, clean)[0]]
        loss, _ = lmppm_loss(model.autoencoder, model.distance, clean, noisy, star, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        z_clean = model.autoencoder.encode(clean)[0]
        noisy = (clean + 0.5 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
        z_noisy = model.autoencoder.encode(noisy)[0]
        target = (z_noisy - model.autoencoder.encode(clean[nearest(noisy, clean)[0]])[0]).norm(dim=1)
        d_bank, d_off = model.distance(z_clean), model.distance(z_noisy)
    assert d_bank.abs().mean() < 0.2 * target.mean()
    assert 0.5 * target.mean() < d_off.mean() < 1.5 * target.mean()
    assert torch.corrcoef(torch.stack([d_off, target]))[0, 1] > 0.6


def test_the_denoising_term_is_the_dae_loss_and_off_by_default(rng):
    torch.manual_seed(0)
    model = LMPPM(tiny_config())
    x, noisy = _batch(rng)
    ae = model.autoencoder.eval()
    _, terms = lmppm_loss(ae, model.distance, x, noisy, x, LossWeights())
    assert "denoise" not in terms  # lambda_7 = 0: Eq. 20 exactly
    weights = LossWeights(0, 0, 0, 0, 0, 0, denoise=3.0)
    total, terms = lmppm_loss(ae, model.distance, x, noisy, x, weights)
    expected = ((ae.decode(ae.encode(noisy)[0]) - x) ** 2).sum((1, 2, 3)).mean()
    torch.testing.assert_close(terms["denoise"], expected)
    torch.testing.assert_close(total, 3.0 * expected)
