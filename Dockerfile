# syntax=docker/dockerfile:1
#
# Glassbox server and worker image.
#
#   docker build -t glassbox:cpu .                                  # CPU: torch from the CPU wheel index
#   docker build -t glassbox:cuda --build-arg VARIANT=cuda .        # CUDA: torch from PyPI (CUDA runtime bundled)
#   docker run -p 50051:50051 glassbox:cpu                          # serves the shipped demo models
#
# The final stage holds only the virtual environment and the model repository; it runs as an
# unprivileged user and reports healthy when the gRPC health service says SERVING.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/glassbox/bin:$PATH
RUN python -m venv /opt/glassbox
# torch first: the largest layer, rebuilt only when the variant or version changes.
RUN case "$VARIANT" in \
      cpu)  pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
              --index-url https://download.pytorch.org/whl/cpu ;; \
      cuda) pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" ;; \
      *)    echo "VARIANT must be cpu or cuda, got ${VARIANT}" >&2; exit 1 ;; \
    esac
WORKDIR /src
COPY clients/python/ clients/python/
COPY pyproject.toml ./
COPY service/ service/
RUN pip install ./clients/python .

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="glassbox" \
      org.opencontainers.image.description="gRPC service that explains image classifiers" \
      io.glassbox.variant="${VARIANT}"
RUN groupadd --system --gid 10001 glassbox \
 && useradd --system --uid 10001 --gid glassbox --home-dir /srv/glassbox --shell /usr/sbin/nologin glassbox
COPY --from=build /opt/glassbox /opt/glassbox
COPY --chown=root:root models/ /srv/glassbox/models/
ENV PATH=/opt/glassbox/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GLASSBOX_ADDRESS=0.0.0.0:50051 \
    GLASSBOX_MODEL_REPOSITORY=/srv/glassbox/models \
    GLASSBOX_METRICS__ADDRESS=0.0.0.0 \
    GLASSBOX_METRICS__PORT=9464
WORKDIR /srv/glassbox
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["glassbox-client", "--address", "127.0.0.1:50051", "--timeout", "4", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["glassbox"]
CMD ["serve"]
