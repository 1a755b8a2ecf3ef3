# syntax=docker/dockerfile:1
# Every Patron program in one image (patron-ingest, patron-api, patron-trigger
# once it exists, patron-devkafka, patron-replay, all in /usr/local/bin); a
# Kubernetes Deployment picks its program with `command` (k8s/).
#
#   docker build -t patron:dev .
#
# The build stage has the -dev packages of scripts/deps.sh; the final stage
# only the shared libraries the programs link (tests/k8s/check_dockerfile.py
# compares the two lists with what the binaries actually load), runs as an
# unprivileged numeric user, and starts the program directly: no shell is
# involved at run time.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev cmake ninja-build pkg-config protobuf-c-compiler \
      librdkafka-dev libhiredis-dev libuv1-dev libprotobuf-c-dev \
      libjansson-dev libyaml-dev libicu-dev libhttp-parser-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY proto/ proto/
COPY services/ services/
# Release: no sanitizers, no tests (Criterion is not installed here).
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPATRON_TESTS=OFF \
      -DPATRON_SANITIZE=OFF \
 && cmake --build build \
 && mkdir /out \
 && install -m 0755 -s build/patron-* /out/

FROM debian:bookworm-slim
# ca-certificates: librdkafka verifies the brokers' TLS certificates with them
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libuv1 libprotobuf-c1 libjansson4 libyaml-0-2 \
      libicu72 libhttp-parser2.9 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 patron \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin patron
COPY --from=build /out/ /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can verify it (k8s/ uses 10001).
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# `docker run IMAGE patron-replay ...` runs another program
CMD ["/usr/local/bin/patron-api"]
