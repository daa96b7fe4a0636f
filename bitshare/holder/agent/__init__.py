"""The in-process agent's boot directory: ``bitshare run`` puts it first on ``PYTHONPATH``.

Python imports ``sitecustomize`` at start-up, so every Python process of the lease
(children included, since they inherit the environment) starts the agent without
any change to the application. The modules here use the standard library only: the
application's interpreter need not have bitshare's dependencies.
"""
