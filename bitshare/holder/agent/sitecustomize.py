"""Started by Python at interpreter start-up: run bitshare's agent, then the site's own sitecustomize."""

import importlib.util
import os
import sys


def _chain() -> None:
    """Run the sitecustomize this one shadows, if the environment has another."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or ".") == here:
            continue
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_bitshare_shadowed_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


try:
    import bitshare_agent

    bitshare_agent.start()
except Exception as exc:  # the application must run even if the agent cannot
    sys.stderr.write(f"bitshare: warning: the in-process agent did not start: {exc}\n")
_chain()
