# syntax=docker/dockerfile:1

# ---- build ----
FROM rust:1-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares these targets; the manifest does not load without their files.
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin apiproxy

# ---- runtime ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/apiproxy --shell /usr/sbin/nologin apiproxy
COPY --from=builder /build/target/release/apiproxy /usr/local/bin/apiproxy
USER apiproxy
WORKDIR /home/apiproxy
# mimalloc commits arena memory on demand and returns freed pages at once: a resident size close
# to what is in use (see bench/RESULTS.md).
ENV HOST=0.0.0.0 \
    PORT=8000 \
    MIMALLOC_ARENA_EAGER_COMMIT=0 \
    MIMALLOC_PURGE_DELAY=0
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/usr/local/bin/apiproxy"]
CMD ["serve"]
