"""bitshare: share NVIDIA GPUs, whole or in memory partitions, between applications and hosts."""

__version__ = "0.1.0"
API_VERSION = "bitshare.v1"
