"""Put first on a remote command's PYTHONPATH by ``bitshare run --remote``: its ``cupy`` package is
bitshare's remote CuPy, its ``sitecustomize`` makes ``import torch`` give remote PyTorch; not a
package to import directly."""
