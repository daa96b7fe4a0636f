"""Run the sitecustomize that one of bitshare's shadows: the next on the path after its own
directory (one before it on the path ran first, and chained to it). Standard library only."""

import importlib.util
import os
import sys


def run_shadowed(own_file: str) -> None:
    here = os.path.dirname(os.path.abspath(own_file))
    entries = [os.path.abspath(entry or ".") for entry in sys.path]
    for entry in entries[entries.index(here) + 1 :] if here in entries else entries:
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_bitshare_shadowed_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return
