"""User CUDA kernels for remote leases: the source goes to the worker once (named by its hash) and is
compiled there; launches refer to it. On simulated GPUs the first sync after a kernel raises
``KernelUnavailable``: NumPy on the CPU has no CUDA compiler."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...protocol import wire
from ...protocol.v1 import bitshare_pb2 as pb
from ..session import session
from .array import handle_of, ndarray, queue_op

Op = pb.ROp


class _Kernel:
    kind = ""

    def __init__(self, **params: Any) -> None:
        self._params = {k: v for k, v in params.items() if v is not None}
        text = json.dumps([self.kind, sorted((k, repr(v)) for k, v in self._params.items())])
        self.name = f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"
        self._defined_in: tuple[int, int] | None = None  # the session and worker it was sent to

    def _define(self) -> None:
        owner = session()
        if self._defined_in == (id(owner), owner.incarnation):
            return
        kwargs = {"kind": self.kind, **self._params}
        owner.queue(
            Op(kind=Op.KIND_KERNEL, name=self.name, kwargs={k: wire.encode(v, handle_of) for k, v in kwargs.items()})
        )
        self._defined_in = (id(owner), owner.incarnation)


class RawKernel(_Kernel):
    kind = "RawKernel"

    def __init__(
        self, code: str, name: str, options: tuple[str, ...] = (), backend: str = "nvrtc", **kwargs: Any
    ) -> None:
        super().__init__(code=code, name=name, options=tuple(options), backend=backend)

    def __call__(self, grid: Any, block: Any, args: tuple[Any, ...], *, shared_mem: int = 0, **kwargs: Any) -> None:
        self._define()
        grid = (grid,) if isinstance(grid, int) else tuple(grid)
        block = (block,) if isinstance(block, int) else tuple(block)
        queue_op(Op.KIND_LAUNCH, self.name, [grid, block, tuple(args)], {"shared_mem": shared_mem}, [])


class ElementwiseKernel(_Kernel):
    kind = "ElementwiseKernel"

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel", **kwargs: Any) -> None:
        super().__init__(in_params=in_params, out_params=out_params, operation=operation, name=name, **kwargs)
        self._inputs = len([p for p in in_params.split(",") if p.strip()])
        self._outputs = len([p for p in out_params.split(",") if p.strip()])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._define()
        given = len(args) - self._inputs  # outputs passed in are written in place
        if given >= self._outputs:
            queue_op(Op.KIND_LAUNCH, self.name, list(args), kwargs, [])
            return args[self._inputs] if self._outputs == 1 else tuple(args[self._inputs :])
        results = queue_op(Op.KIND_LAUNCH, self.name, list(args), kwargs, [None] * (self._outputs - max(given, 0)))
        return results[0] if len(results) == 1 else tuple(results)


class ReductionKernel(_Kernel):
    kind = "ReductionKernel"

    def __init__(
        self,
        in_params: str,
        out_params: str,
        map_expr: str,
        reduce_expr: str,
        post_map_expr: str,
        identity: Any,
        name: str = "reduce_kernel",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            in_params=in_params,
            out_params=out_params,
            map_expr=map_expr,
            reduce_expr=reduce_expr,
            post_map_expr=post_map_expr,
            identity=identity,
            name=name,
            **kwargs,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> ndarray:
        self._define()
        return queue_op(Op.KIND_LAUNCH, self.name, list(args), kwargs, [None])[0]
