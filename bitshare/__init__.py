"""bitshare: share NVIDIA GPUs, whole or in memory partitions, between applications and hosts."""

__version__ = "0.1.0"
API_VERSION = "bitshare.v1"

from . import log  # noqa: E402

log.quiet_grpc()  # before any of bitshare's modules imports gRPC: it reads its log level then
