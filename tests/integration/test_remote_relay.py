"""The daemon's relay of a remote session: the lease's end reaches a client whose session is open
and idle (the relay waiting on the worker), and a client's replies come back in order."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.wire import encode, meta_pb

from ..support.harness import Daemon
from ..support.remote_wire import RawSession, results

Op = pb.ROp


def asarray(handle: int, values: list[float]) -> pb.ROp:
    host = np.asarray(values)
    return Op(
        kind=Op.KIND_CALL,
        name="asarray",
        args=[encode(host, lambda _v: None)],
        out=[handle],
        expect=[meta_pb(host.shape, host.dtype)],
    )


def item(handle: int) -> pb.ROp:
    return Op(kind=Op.KIND_QUERY, name="item", args=[pb.RValue(handle=handle)])


def test_a_lease_that_ends_while_its_session_waits_ends_the_stream_with_the_reason(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        raw = RawSession(client, lease.id)
        try:
            [result] = results(raw.sync(asarray(1, [2.0]), item(1)))
            assert result.values[-1].float == 2.0
            client.release(lease.id)  # the relay is waiting for the worker's next reply
            with pytest.raises(grpc.RpcError) as caught:
                raw.sync(item(1))
            assert caught.value.code() == grpc.StatusCode.ABORTED
            assert f"lease {lease.id} released" in caught.value.details()
        finally:
            raw.close()


def test_many_syncs_in_a_row_each_get_their_own_answer(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=64))
        raw = RawSession(client, lease.id)
        try:
            for n in range(1, 200):
                [result] = results(raw.sync(asarray(n, [float(n)]), item(n)))
                assert (result.seq, result.values[-1].float) == (n, float(n))
        finally:
            raw.close()
            client.release(lease.id)
