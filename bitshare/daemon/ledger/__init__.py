"""The lease ledger (pure logic: standard library only) and the model it holds."""

from .ledger import ENDED_KEPT, Ledger
from .model import (
    Change,
    ChangeKind,
    Gpu,
    GpuFilter,
    InvalidRequest,
    Lease,
    LeaseNotFound,
    LeaseSpec,
    LeaseState,
    LedgerError,
    NoCapacity,
    Policy,
    Size,
    Unsatisfiable,
    WrongState,
)

__all__ = [
    "ENDED_KEPT",
    "Change",
    "ChangeKind",
    "Gpu",
    "GpuFilter",
    "InvalidRequest",
    "Lease",
    "LeaseNotFound",
    "LeaseSpec",
    "LeaseState",
    "Ledger",
    "LedgerError",
    "NoCapacity",
    "Policy",
    "Size",
    "Unsatisfiable",
    "WrongState",
]
