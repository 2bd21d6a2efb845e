"""Python client for the notigate gRPC API (needs grpcio, protobuf and googleapis-common-protos).

``pb``/``pb_grpc`` are the generated message and stub modules; :class:`NotificationClient`
and :class:`AsyncNotificationClient` wrap them with auth, retries and typed errors;
:func:`photo`, :func:`document`... (:mod:`notigate_client.media`) build the files a send carries.
"""

from notigate_client._proto.notigate.v1 import notification_pb2 as pb
from notigate_client._proto.notigate.v1 import notification_pb2_grpc as pb_grpc
from notigate_client.client import (
    AsyncNotificationClient,
    NotificationClient,
    bot_of_job,
    job_state,
    state_name,
)
from notigate_client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    NotigateError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from notigate_client.events import WatchedEvent
from notigate_client.media import (
    animation,
    audio,
    document,
    item,
    media,
    media_group,
    media_kind,
    photo,
    video,
    voice,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncNotificationClient",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotificationClient",
    "NotigateError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "WatchedEvent",
    "animation",
    "audio",
    "bot_of_job",
    "document",
    "from_rpc_error",
    "item",
    "job_state",
    "media",
    "media_group",
    "media_kind",
    "pb",
    "pb_grpc",
    "photo",
    "state_name",
    "video",
    "voice",
]
