"""Training-ready targets, joint transforms and the PyTorch / TensorFlow adapters."""
