"""Python client for the notigate gRPC API (needs grpcio, protobuf and googleapis-common-protos).

``pb``/``pb_grpc`` are the generated message and stub modules; :class:`NotificationClient`
and :class:`AsyncNotificationClient` wrap them with auth, retries and typed errors.
"""

from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client._proto.notigate.v1 import notification_pb2_grpc as pb_grpc
from notigate_client.client import (
    AsyncNotificationClient,
    NotificationClient,
    job_state,
    state_name,
)
from notigate_client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    NotigateError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncNotificationClient",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotificationClient",
    "NotigateError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "job_state",
    "pb",
    "pb_grpc",
    "state_name",
]
