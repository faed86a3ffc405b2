# syntax=docker/dockerfile:1
# transnotes container image: one binary, every role (serve, worker, migrate, translate, models).
#
#   docker build -t transnotes .
#   docker run --rm -p 8000:8000 -v transnotes-data:/data transnotes          # API + 2 workers, SQLite
#   docker run --rm transnotes worker --workers 2                           # worker only
#   docker run --rm -v transnotes-models:/models transnotes models pull Helsinki-NLP/opus-mt-en-es
#
# Everything comes from Debian 12 (bookworm) packages, matching scripts/install-deps.sh; the
# runtime stage carries only the shared libraries the binary links plus Apertium for en<->es.

############################ build stage ############################
FROM debian:12-slim AS build

ARG DEBIAN_FRONTEND=noninteractive
# The -dev packages of scripts/install-deps.sh (tests, benchmarks and services are not built here).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libsqlite3-dev libpq-dev libhiredis-dev \
      libsentencepiece-dev libopenblas-dev \
      libspdlog-dev libfmt-dev libcli11-dev \
      libssl-dev libcurl4-openssl-dev \
      libjwt-dev libsodium-dev libpwquality-dev cracklib-runtime \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The `release` preset (Ninja, Release, binaryDir build/release). Tests and benchmarks are switched
# off so the build stage needs neither GoogleTest nor Google Benchmark.
RUN cmake --preset release -DTRANSNOTES_BUILD_TESTS=OFF -DTRANSNOTES_BUILD_BENCH=OFF \
 && cmake --build --preset release --target transnotes \
 && strip build/release/src/app/transnotes \
 && build/release/src/app/transnotes --help >/dev/null

############################ runtime stage ############################
FROM debian:12-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive
# Shared libraries of the binary (checked with ldd + dpkg -S on Debian 12), Apertium with the
# English<->Spanish pair, tini as PID 1 (Apertium pipelines are child processes: tini reaps them
# and forwards SIGTERM to transnotes), curl for the HEALTHCHECK, CA certificates for `models pull`,
# and cracklib's dictionary (cracklib-runtime), without which registration refuses to start.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libstdc++6 \
      libboost-json1.81.0 libboost-url1.81.0 \
      libsqlite3-0 libpq5 libhiredis0.14 \
      libsentencepiece0 libopenblas0-pthread \
      libspdlog1.10 libfmt9 libcurl4 \
      libjwt0 libsodium23 libpwquality1 cracklib-runtime \
      apertium apertium-en-es \
      tini curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

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

# Only meaningful for `serve`; compose disables it for worker/migrate containers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${TRANSNOTES_PORT:-8000}/readyz" >/dev/null || exit 1

# transnotes drains on SIGTERM: the server stops accepting, workers finish their running jobs.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/transnotes"]
CMD ["serve", "--host", "0.0.0.0"]
