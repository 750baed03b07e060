# syntax=docker/dockerfile:1
# stellar-peer-injector: `docker build -t stellar-peer-injector:0.1.0 .`

# Build wheels for the package and its dependencies (uvloop and httptools included).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
COPY certs ./certs
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fast]"

# Runtime: no compilers, no build files, not root.
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
# Same uid as the Deployment's runAsUser; no home, no shell login.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["stellar-peers"]
CMD ["serve"]
