"""``bitshare bench``: experiments run through real leases on whatever the daemon serves.

:mod:`.seed` reproduces the GPU-sharing experiment of "Running Multiple Applications on One GPU
with vSphere Bitfusion": four inference workloads, each under a 25% lease, one after another and
then all at once, under a light and a heavy load. Workloads speak :mod:`.protocol`.
"""
