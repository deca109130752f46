"""The names the command line checks before it loads torch, so that a typo is refused in a fraction of a
second: each list is its registry's, written out (tests/test_first_hour.py checks that they agree)."""

RESTORING = ("lmppm", "ablation-lmppm", "dae", "ablation-dae", "ldm", "bm3d", "nlmeans", "wavelet")  # methods/
TRAINED = ("lmppm", "dae", "ldm", "classifier")  # methods/ that train
SUITES = (
    "camera",
    "circle",
    "faces",
    "generation",
    "mnist",
    "mnist-noise",
    "photo-noise",
    "photo-pick",
    "photos",
    "speed",
)
DEGRADATIONS = ("noise", "elastic", "downsample", "missing-pixels", "scribbles", "sharpen")  # core/degradations.py
DOMAINS = ("digits", "faces")  # Table 6's presets
PRECISIONS = ("fp32", "bf16", "fp16")  # core/precision.py
AUTO = "auto"  # restore: fp32, or bf16 where the picked model's bench allows it (domain.fast_precision)
SPLITS = ("test", "validation")
STARTS = ("latent", "pixel")  # restoration.start_latents
