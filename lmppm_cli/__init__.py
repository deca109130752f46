"""lmppm: Latent Manifold-Probabilistic Projection Models for blind image restoration."""

__version__ = "0.1.0"
