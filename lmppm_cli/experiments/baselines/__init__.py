"""The paper's baselines: the denoising autoencoder (DAE) and a latent diffusion model (LDM) on it."""
