"""bitshare's PyTorch for remote leases: ``import torch`` under ``bitshare run --remote``.

A program's ``cuda`` tensors live in the lease's worker on the GPU server; PyTorch itself runs
here (autograd, modules, optimizers), and each ATen operator on a ``cuda`` tensor is queued and
sent in batches at sync points. See docs/remote.md.
"""

from __future__ import annotations

from .install import install

__all__ = ["install"]
