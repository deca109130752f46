"""Files and images: decoding and writing images, restoring files and folders, tiling, model files
(safetensors, the Hub), datasets, devices, which model suits an image."""
