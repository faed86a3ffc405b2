# syntax=docker/dockerfile:1
# transnotes container image: one binary, every role (serve, worker, migrate, translate, models).
#
#   docker build -t transnotes .
#   docker run --rm -p 8000:8000 -v transnotes-data:/data transnotes          # API + 2 workers, SQLite
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... -e TRANSNOTES_METRICS_PORT=9100 \
#     transnotes worker --workers 2                                          # worker only
#   docker run --rm -v transnotes-models:/models transnotes models pull Helsinki-NLP/opus-mt-en-es
#
# Everything comes from Debian 12 (bookworm) packages: the build stage installs them with
# scripts/install-deps.sh (README's quick start); the runtime stage carries only the packages of
# the libraries the binary links (deploy/docker/runtime-packages.sh) plus Apertium for en<->es.
# With no arguments the image runs the embedded default: `serve` on 0.0.0.0:8000 with two
# in-process workers, SQLite and the generated secret key in the /data volume, jwt accounts.

############################ build stage ############################
FROM debian:12-slim AS build

# The same script as README's quick start, so the image builds with exactly the packages a
# developer's machine has (it also brings test tools the image does not need; this stage is
# thrown away). Copied alone first so the package layer stays cached across source edits.
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The `release` preset (Ninja, Release, binaryDir build/release). Tests and benchmarks are switched
# off: only the binary goes into the image.
RUN cmake --preset release -DTRANSNOTES_BUILD_TESTS=OFF -DTRANSNOTES_BUILD_BENCH=OFF \
 && cmake --build --preset release --target transnotes \
 && strip build/release/src/app/transnotes \
 && build/release/src/app/transnotes --help >/dev/null \
 && deploy/docker/runtime-packages.sh build/release/src/app/transnotes > /runtime-packages.txt

############################ runtime stage ############################
FROM debian:12-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive
# The packages holding the libraries the binary links (found from the binary itself in the build
# stage, so a new dependency needs no edit here), plus what it runs or reads at run time:
# Apertium with the English<->Spanish pair, cracklib's dictionary (registration refuses to start
# without it), tini as PID 1 (Apertium pipelines are child processes: tini reaps them and
# forwards SIGTERM to transnotes), curl for the HEALTHCHECK, CA certificates for `models pull`.
COPY --from=build /runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs --arg-file=/tmp/runtime-packages.txt \
      apt-get install -y --no-install-recommends \
      apertium apertium-en-es cracklib-runtime \
      tini curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt

# A fixed non-root uid/gid so volume ownership is predictable across hosts.
RUN groupadd --system --gid 10001 transnotes \
 && useradd --system --uid 10001 --gid transnotes --home-dir /data --shell /usr/sbin/nologin transnotes \
 && mkdir -p /data /models \
 && chown transnotes:transnotes /data /models

COPY --from=build /src/build/release/src/app/transnotes /usr/local/bin/transnotes

# Container defaults; every one can be overridden at run time (see docs/deployment.md).
ENV TRANSNOTES_HOST=0.0.0.0 \
    TRANSNOTES_PORT=8000 \
    TRANSNOTES_DATA_DIR=/data \
    MODELS_DIR=/models \
    HF_HOME=/models/.hf \
    APERTIUM_MODES_DIR=/usr/share/apertium/modes \
    LOG_LEVEL=info

USER transnotes:transnotes
WORKDIR /data
VOLUME ["/data", "/models"]
EXPOSE 8000

# Readiness (database, Redis when configured, engines loaded), not mere liveness: a container
# that cannot serve shows as unhealthy. `serve` answers on TRANSNOTES_PORT; a `worker` answers on
# its metrics port, so give workers TRANSNOTES_METRICS_PORT (the variable, not the flag) and this
# check follows it. compose.yaml states each service's check itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${TRANSNOTES_METRICS_PORT:-${TRANSNOTES_PORT:-8000}}/readyz" || exit 1

# transnotes drains on SIGTERM: the server stops accepting, workers finish their running jobs.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/transnotes"]
CMD ["serve", "--host", "0.0.0.0"]
