"""Networks and model containers; `architectures.py` builds an autoencoder by name, and the method
registry (lmppm_cli/methods) says which container a saved model of each method is."""

from lmppm_cli.core.models.architectures import ARCHITECTURES, architecture, build_autoencoder
from lmppm_cli.core.models.autoencoder import ConvAutoencoder
from lmppm_cli.core.models.classifier import DigitClassifier
from lmppm_cli.core.models.distance import DistanceMLP
from lmppm_cli.core.models.lmppm import LMPPM, LatentDiffusion, encode_all

__all__ = [
    "ARCHITECTURES",
    "ConvAutoencoder",
    "DigitClassifier",
    "DistanceMLP",
    "LMPPM",
    "LatentDiffusion",
    "architecture",
    "build_autoencoder",
    "encode_all",
]
