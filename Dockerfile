# The Tasques server image: ghcr.io/tasques/tasques:<version of pyproject.toml>.
# Build: docker build -t ghcr.io/tasques/tasques:0.1.0 .   (BuildKit, the default builder since Docker 23)
# tests/deploy/ lints this file and runs its entrypoint with its environment on a read-only root.

FROM python:3.11.14-slim-trixie AS base

# Stage 1: wheels of Tasques and every dependency. All of them ship binary wheels, so no compiler is needed;
# the wheels are the only thing the final stage takes from here.
FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# tasques/kibana/tasques.ndjson is a link to this file: the wheel stores its content.
COPY kibana/tasques.ndjson kibana/
COPY tasques/ tasques/
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

# Stage 2: the runtime, from the same base, with the wheels installed and nothing else added.
FROM base AS runtime

LABEL org.opencontainers.image.title="tasques" \
      org.opencontainers.image.description="A durable task server: pull tasks, recurring tasks and HTTP-target tasks over a REST API, on SQLite or Elasticsearch." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-trixie"

# No home directory: nothing may write outside /var/lib/tasques and /tmp, and a missing HOME shows it.
RUN groupadd --system --gid 10001 tasques \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tasques \
    && mkdir -p /var/lib/tasques /etc/tasques \
    && chown 10001:10001 /var/lib/tasques

# The wheels are bind-mounted, not copied, so no layer keeps them. pip compiles the bytecode here, at build
# time: at run time Python writes none (PYTHONDONTWRITEBYTECODE), as the root may be read-only.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --no-index --find-links=/wheels tasques==0.1.0

# The documented defaults (`tasques config`); mount a ConfigMap here, or override any setting by TASQUES_* env.
COPY config.yaml /etc/tasques/config.yaml

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TASQUES_SERVER_BIND_ADDRESS=0.0.0.0:8080 \
    TASQUES_STORE_SQLITE_PATH=/var/lib/tasques/tasques.db

# Declared after the chown, so a new volume starts owned by the tasques user.
VOLUME ["/var/lib/tasques"]
WORKDIR /var/lib/tasques
USER 10001:10001
EXPOSE 8080

# A stop drains within server.shutdown_grace (10s by default): give `docker stop` a longer timeout (-t 15).
STOPSIGNAL SIGTERM
# No curl in a slim image: the health check is Python's urllib, on the port of TASQUES_SERVER_BIND_ADDRESS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ['TASQUES_SERVER_BIND_ADDRESS'].rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

# Exec form: tasques is PID 1 and receives the SIGTERM itself.
ENTRYPOINT ["tasques"]
CMD ["--config", "/etc/tasques/config.yaml", "serve"]
