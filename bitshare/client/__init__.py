"""The client side: a connection to one bitshared (``connect``), finding the daemon, and placement.

client = connect("unix:/run/bitshare/bitshared.sock")
lease = client.request(LeaseRequest(fraction=0.25))
"""

from .connection import Client, LeaseRequest, connect

__all__ = ["Client", "LeaseRequest", "connect"]
