# syntax=docker/dockerfile:1
# One image for every role of wavix-events:
#   docker run IMAGE                  the webhook receiver (`wavix-events serve`, port 8000)
#   docker run IMAGE worker           an arq worker (/healthz and /metrics on WORKER_HEALTH_PORT, 9100)
#   docker run IMAGE simulate ...     the Wavix sandbox; `dlq list|replay` for dead letters
# Settings come from the environment (contract/settings.py); docs/deploy.md shows compose and Kubernetes.
#
# The base is pinned to a patch release; to pin it immutably, append its digest
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) as `@sha256:...`.

FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---- builder: resolve nothing, build nothing native: every dependency is a hashed, pinned wheel ----
FROM base AS builder
WORKDIR /src
# The runtime venv gets no pip and no setuptools: only the locked packages and our own wheel.
RUN python -m venv --without-pip /opt/venv
COPY requirements.lock ./
RUN python -m pip --python /opt/venv/bin/python install \
        --no-deps --require-hashes --only-binary=:all: -r requirements.lock
# A throwaway venv with the pinned build backend turns the project into a wheel.
COPY deploy/build-requirements.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r build-requirements.lock
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY service/ service/
COPY workers/ workers/
COPY sandbox/ sandbox/
COPY wavix_events/ wavix_events/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && python -m pip --python /opt/venv/bin/python install --no-deps --compile /tmp/wheels/*.whl

# ---- runtime: the venv, tini, a non-root user; no compiler, no pip cache, no build tools ----
FROM base AS runtime
ARG UID=10001
# tini is PID 1: it forwards SIGTERM to wavix-events (graceful shutdown) and reaps orphaned children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${UID}" wavix \
    && useradd --system --uid "${UID}" --gid wavix --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin wavix
COPY --from=builder /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/wavix-events/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/wavix-events
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 9100
STOPSIGNAL SIGTERM
# The receiver's /healthz, else a worker's (9100): whichever role this container runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/wavix-events/healthcheck.py"]
ENTRYPOINT ["/usr/bin/tini", "--", "wavix-events"]
CMD ["serve"]
