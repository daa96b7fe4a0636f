"""What the daemon serves: the gRPC lease and admin services, their conversion and authentication,
and the Prometheus metrics."""
