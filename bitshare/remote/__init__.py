"""Remote GPU access only: remote CuPy (cupy/), remote PyTorch (torch/), and the session, sync and
bulk transfer they share."""
