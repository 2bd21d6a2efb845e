# syntax=docker/dockerfile:1
# Multi-stage: build a wheel with the build tools, run it as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY client ./client
# Both distributions: the gateway depends on the client (client/, notigate-client).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./client .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/notigate --create-home notigate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER notigate
WORKDIR /var/lib/notigate
ENV NOTIGATE_LISTEN=0.0.0.0:50051 \
    NOTIGATE_DATA_DIR=/var/lib/notigate/data \
    PYTHONUNBUFFERED=1
# 50051 gRPC; 9090 Prometheus metrics when NOTIGATE_METRICS_LISTEN=0.0.0.0:9090.
EXPOSE 50051 9090
STOPSIGNAL SIGTERM
# Exit 0 only while SERVING. With TLS or API tokens, NOTIGATE_CA / NOTIGATE_API_TOKEN in the
# container's environment reach the check as well.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["notigate", "health", "--target", "127.0.0.1:50051", "--timeout", "2"]
ENTRYPOINT ["notigate"]
CMD ["serve"]
