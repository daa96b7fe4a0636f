"""Started by Python at interpreter start-up: run bitshare's agent, then the site's own sitecustomize."""

import sys

try:
    import bitshare_agent

    bitshare_agent.start()
except Exception as exc:  # the application must run even if the agent cannot
    sys.stderr.write(f"bitshare: warning: the in-process agent did not start: {exc}\n")

import bitshare_chain

bitshare_chain.run_shadowed(__file__)
