import pytest
import torch
from conftest import tiny_config

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models import LMPPM


@pytest.mark.parametrize("channels,height,width", [(1, 28, 28), (3, 17, 23), (1, 9, 31), (4, 16, 16)])
def test_autoencoder_shapes_and_range(channels, height, width, rng):
    model = LMPPM(tiny_config(channels, height, width, latent_dim=5))
    x = torch.rand(3, channels, height, width, generator=rng)
    z, skips = model.autoencoder.encode(x)
    assert z.shape == (3, 5) and skips == ()
    y = model.autoencoder.decode(z)
    assert y.shape == x.shape
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert model.distance(z).shape == (3,)


def test_paper_mnist_sizes():
    """Table 8: conv 1->32->64 (k3, s2) gives 64 x 7 x 7 before the linear to d = 18."""
    model = LMPPM(tiny_config(1, 28, 28, latent_dim=18).__class__())
    assert model.autoencoder.to_latent.in_features == 64 * 7 * 7
    assert model.autoencoder.to_latent.out_features == 18
    widths = [m.out_features for m in model.distance.net if isinstance(m, torch.nn.Linear)]
    assert widths == [100, 50, 20, 1]


def test_too_small_image_is_refused():
    with pytest.raises(LmppmError, match="too small"):
        LMPPM(tiny_config(1, 3, 3))


def test_bank_is_encoder_of_images(tiny_model, rng):
    x = torch.rand(5, 1, 12, 12, generator=rng)
    tiny_model.build_bank(x)
    torch.testing.assert_close(tiny_model.bank, tiny_model.autoencoder.encode(x)[0])
