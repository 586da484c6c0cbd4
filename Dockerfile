# syntax=docker/dockerfile:1
#
# shoal in a container: built on Debian bookworm, run on distroless (glibc and
# libgcc, no shell, no package manager) as an unprivileged user.
#
#   docker build -t shoal .
#   docker run -d --name shoal -p 6969:6969/udp shoal
#   docker run -d -p 6969:6969/udp -e SHOAL_WORKERS=2 -e SHOAL_STATS_INTERVAL=60 shoal
#   docker run --rm shoal --help              # every flag and its SHOAL_* variable
#   docker run --rm shoal scrape udp://tracker.example:6969 <40 hex digits>
#
# Configure with SHOAL_* environment variables (each flag has one) or with flags
# after the image name. `docker stop` sends SIGTERM; shoal handles it itself (no
# init needed as PID 1) and exits 0. The build uses BuildKit cache mounts (the
# default builder since Docker 23; podman and buildah support them too).
# tests/container.sh builds this file unchanged with podman (no registry:
# --build-context stands in for the two images), lints it with hadolint, and
# runs the image: an announce through the published port, a healthy
# HEALTHCHECK, a clean stop.

# ---- build -------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The `dist` profile (fat LTO, one codegen unit) is the one that ships. The
# cache mounts keep downloaded crates and compiled dependencies between builds,
# so a source change rebuilds shoal alone. The target directory is a cache, not
# a layer: copy the binary out of it, stripped (about 5 MB), in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --profile dist --locked --bin shoal \
    && install -D -s -m 0755 target/dist/shoal /out/shoal

# ---- run ---------------------------------------------------------------------
# distroless/cc holds glibc and libgcc_s, all the binary links (libc, libm,
# libgcc_s). Its :nonroot variant has user "nonroot", uid/gid 65532; the numeric
# form lets Kubernetes' runAsNonRoot verify it. Port 6969 needs no capability.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/shoal /usr/local/bin/shoal
USER 65532:65532

# Defaults, shown so they are easy to change with `docker run -e`. With SHOAL_UDP
# unset, shoal listens on 0.0.0.0:6969 and [::]:6969 (IPv6 skipped with a warning
# where the container has none); with SHOAL_WORKERS unset, it starts one worker
# per CPU the container may use.
ENV SHOAL_INTERVAL=1800 \
    SHOAL_PEER_TIMEOUT=2700 \
    SHOAL_MAX_NUMWANT=200 \
    SHOAL_STATS_INTERVAL=0
# Logging is at info by default; set SHOAL_LOG (or RUST_LOG) to change it.
# Other examples:
#   SHOAL_UDP=0.0.0.0:6969          IPv4 only (an address given explicitly must bind)
#   SHOAL_WORKERS=2                 worker threads
#   SHOAL_SHARDS=1024               shards of the swarm map
#   SHOAL_SOCKET_BUFFER=8388608     capped by the host's net.core.rmem_max

EXPOSE 6969/udp
# HTTP announce/scrape is off by default (README: "Container"). To serve it:
#   -e SHOAL_HTTP=0.0.0.0:6969 -p 6969:6969/tcp   (TCP and UDP may share the port)
# EXPOSE 6969/tcp
# /metrics and /health are on their own listener, off by default; publish it
# only to the network Prometheus scrapes from:
#   -e SHOAL_METRICS=0.0.0.0:9969 -p 127.0.0.1:9969:9969/tcp
# EXPOSE 9969/tcp

# A real BEP 15 round trip against the running tracker (connect + scrape of an
# unknown hash, which any tracker answers with zeros): works with HTTP off.
# It assumes UDP on port 6969 of 127.0.0.1 (the default, or 0.0.0.0/[::]). For
# another SHOAL_UDP, override it in exec form, e.g. compose's
# `healthcheck: test: ["CMD", "/usr/local/bin/shoal", "scrape", ...]` (the image
# has no shell, so `docker run --health-cmd` cannot work), or use --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/shoal", "scrape", "udp://127.0.0.1:6969", \
         "0000000000000000000000000000000000000000", "--timeout", "2", "--tries", "1"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/shoal"]
