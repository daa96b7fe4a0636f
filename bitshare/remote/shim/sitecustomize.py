"""Started by Python at start-up in a program under ``bitshare run --remote``: its ``import torch``
gives PyTorch with the lease's GPU as ``cuda`` (bitshare.remote.torch), then the site's own
sitecustomize runs."""

import importlib.abc
import importlib.util
import sys
from typing import Any


class _TorchFinder(importlib.abc.MetaPathFinder):
    """Finds the real torch, and installs remote PyTorch the moment it has been imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # (once: torch's own imports, and any later import, go as usual)
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            from bitshare.remote.torch import install

            install()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _TorchFinder())

from bitshare.holder.agent import bitshare_chain  # noqa: E402

bitshare_chain.run_shadowed(__file__)
