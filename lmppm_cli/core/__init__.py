"""The paper's core: configuration, the networks F, G, D, the bank and kernel mean (Eq. 21), the flow
(Alg. 4), the loss (Eq. 20), training and calibration, restoration, degradations and metrics.
Importable without typer or rich."""
