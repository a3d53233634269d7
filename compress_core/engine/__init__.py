"""What runs on a model: pruning, quantization, real int8 kernels, post-training recovery, fine-tuning,
training, measurement, and the stages a recipe runs."""
