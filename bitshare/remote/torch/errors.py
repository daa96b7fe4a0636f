"""Exceptions remote PyTorch raises: PyTorch's own types for what failed on the worker, so a
program catches what it would catch on a GPU (``torch.cuda.OutOfMemoryError`` past the partition)."""

from __future__ import annotations

import torch

from ..errors import BUILTINS, register

register("aten::", {**BUILTINS, "OutOfMemoryError": torch.cuda.OutOfMemoryError})
