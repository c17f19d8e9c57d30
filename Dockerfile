# syntax=docker/dockerfile:1
# One image for every role of wavix-events:
#   docker run IMAGE                  the webhook receiver (`wavix-events serve`, port 8000)
#   docker run IMAGE worker           an arq worker (/healthz and /metrics on WORKER_HEALTH_PORT, 9100)
#   docker run IMAGE simulate ...     the Wavix sandbox; `dlq list|replay` for dead letters
# Settings come from the environment (contract/settings.py); docs/deploy.md shows compose and Kubernetes.
#
# The base is pinned to a patch release; to pin it immutably, append its digest
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) as `@sha256:...`.
# BASE_IMAGE swaps it for another Debian bookworm image with python and apt (`make image` and
# tests/test_image.py build on scripts/image-base's, made from Debian packages where no registry answers).

ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---- builder: resolve nothing, build nothing native: every dependency is a hashed, pinned wheel ----
FROM base AS builder
WORKDIR /src
# A throwaway venv (pip from the base's ensurepip, the pinned build backend) installs and builds; the runtime
# venv gets no pip and no setuptools: only the locked packages and our own wheel.
COPY deploy/build-requirements.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r build-requirements.lock \
    && python -m venv --without-pip /opt/venv
COPY requirements.lock ./
RUN /opt/build/bin/pip --python /opt/venv/bin/python install \
        --no-deps --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY service/ service/
COPY workers/ workers/
COPY sandbox/ sandbox/
COPY console/ console/
COPY wavix_events/ wavix_events/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps --compile /tmp/wheels/*.whl

# ---- runtime: the venv, tini, a non-root user; no compiler, no pip, no build tools ----
FROM base AS runtime
ARG UID=10001
# tini is PID 1: it forwards SIGTERM to wavix-events (graceful shutdown) and reaps orphaned children.
# The base's own installers go: pip, setuptools and wheel (the official image has them), and the wheels
# ensurepip would bring them back from (tests/test_image.py looks for each in the built image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && if python -m pip --version >/dev/null 2>&1; then python -m pip uninstall --yes pip setuptools wheel; fi \
    && rm -rf "$(python -c 'import ensurepip, os; print(os.path.dirname(ensurepip.__file__))')/_bundled" \
        /usr/share/python-wheels \
    && groupadd --system --gid "${UID}" wavix \
    && useradd --system --uid "${UID}" --gid wavix --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin wavix
COPY --from=builder /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/wavix-events/healthcheck.py
LABEL org.opencontainers.image.title="wavix-events"
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
