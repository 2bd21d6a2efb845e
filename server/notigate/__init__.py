"""notigate: a gRPC notification gateway for Telegram."""

__version__ = "0.1.0"
