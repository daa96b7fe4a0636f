"""Built-in workloads of ``bitshare bench seed`` (each a program speaking bitshare.bench.protocol)."""
