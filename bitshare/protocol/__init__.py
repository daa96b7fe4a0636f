"""What both ends speak: the bitshare.v1 gRPC protocol, the remote wire format, framing, socket I/O
and the remote CuPy surface. The one package that both the daemon and the client side import."""
