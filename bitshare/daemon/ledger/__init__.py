"""The lease ledger (pure logic: standard library only) and the model it holds."""

from .ledger import ENDED_KEPT, Ledger
from .model import (
    Change,
    ChangeKind,
    Gpu,
    GpuFilter,
    Lease,
    LeaseSpec,
    LeaseState,
    Policy,
    Size,
)

__all__ = [
    "ENDED_KEPT",
    "Change",
    "ChangeKind",
    "Gpu",
    "GpuFilter",
    "Lease",
    "LeaseSpec",
    "LeaseState",
    "Ledger",
    "Policy",
    "Size",
]
