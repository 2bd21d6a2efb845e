"""Python client for the notigate gRPC API (needs only grpcio and protobuf)."""

from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client._proto.notigate.v1 import notification_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
