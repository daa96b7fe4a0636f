"""Put on a remote command's PYTHONPATH by ``bitshare run --remote`` so that ``import cupy``
finds bitshare's remote CuPy; not a package to import directly."""
