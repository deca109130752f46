"""The paper's experiments: bench suites, the baselines (DAE flow, LDM, classical, ambient), the
synthetic circle and pixel-space MPPM."""
