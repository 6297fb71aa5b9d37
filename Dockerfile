# The qlrf-run worker image (docker-compose.yml builds it as qlrf-worker).
# Stage 1 builds the wheel from this repository; stage 2 installs the dependencies
# from deploy/worker.lock (pinned, hashes required; scripts/lock writes it), then
# the wheel alone. The embedded dev servers (the `embedded` extra) stay out.

FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
COPY definitions ./definitions
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12.8-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QLRF_STEP_SANDBOX=required
COPY --from=build /wheels /wheels
COPY deploy/worker.lock /wheels/worker.lock
# bubblewrap: the sandbox every shell step runs in (QLRF_STEP_SANDBOX=required below).
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir --require-hashes -r /wheels/worker.lock \
    && pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin qlrf
USER 10001
WORKDIR /home/qlrf
# 9464: Prometheus metrics; 8081: /healthz and /readyz
EXPOSE 9464 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/readyz', timeout=2)"]
ENTRYPOINT ["qlrf-run"]
CMD ["worker", "--metrics-port", "9464", "--metrics-host", "0.0.0.0", "--health-port", "8081", "--health-host", "0.0.0.0"]
