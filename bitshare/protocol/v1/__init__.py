"""Generated gRPC code for the bitshare.v1 protocol (regenerate with scripts/gen_proto.py)."""
