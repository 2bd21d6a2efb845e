"""The standard ``grpc.health.v1.Health/Check`` call, without the grpcio-health-checking package.

The client needs only grpcio, protobuf and googleapis-common-protos; the two health messages
are built here from their descriptor in a private pool, so they never clash with the
generated ones when the gateway's packages are loaded in the same process.
"""

from __future__ import annotations

from enum import IntEnum

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

METHOD = "/grpc.health.v1.Health/Check"


class ServingStatus(IntEnum):
    """``grpc.health.v1.HealthCheckResponse.ServingStatus``."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


def _messages() -> tuple[type[Message], type[Message]]:
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="notigate_client/grpc_health_v1.proto", package="grpc.health.v1", syntax="proto3"
    )
    proto.message_type.add(name="HealthCheckRequest").field.add(
        name="service", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL
    )
    proto.message_type.add(name="HealthCheckResponse").field.add(
        name="status", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")
        ),
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")
        ),
    )


_Request, _Response = _messages()


def check(
    channel: grpc.Channel,
    service: str = "",
    *,
    timeout: float | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> ServingStatus:
    """Ask the server how ``service`` is (``""``: the server as a whole); raises grpc.RpcError."""
    call = channel.unary_unary(
        METHOD,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=_Response.FromString,
    )
    reply = call(_Request(service=service), timeout=timeout, metadata=metadata)
    status = int(reply.status)
    try:
        return ServingStatus(status)
    except ValueError:  # a status newer than this client
        return ServingStatus.UNKNOWN
