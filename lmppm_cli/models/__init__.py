"""Networks: the autoencoder F/G and the latent distance network D_S."""

from lmppm_cli.models.autoencoder import ConvAutoencoder, build_autoencoder
from lmppm_cli.models.distance import DistanceMLP
from lmppm_cli.models.lmppm import LMPPM

__all__ = ["ConvAutoencoder", "DistanceMLP", "LMPPM", "build_autoencoder"]
