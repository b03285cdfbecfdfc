# Multi-stage build: the release binary built with the Rust toolchain, then a small runtime
# image that runs it as a non-root user with the state directory as a volume.
#
#   docker build -t sasrelay .
#   docker run --rm -v sasrelay-state:/var/lib/sasrelay \
#     -v $PWD/sasrelay.toml:/etc/sasrelay/sasrelay.toml:ro sasrelay
#
# TLS is rustls with the system roots, so the runtime image ships ca-certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin sasrelay

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sasrelay \
 && useradd --system --uid 10001 --gid sasrelay --home-dir /var/lib/sasrelay --shell /usr/sbin/nologin sasrelay \
 && mkdir -p /var/lib/sasrelay /etc/sasrelay \
 && chown sasrelay:sasrelay /var/lib/sasrelay \
 && chmod 0700 /var/lib/sasrelay
COPY --from=build /src/target/release/sasrelay /usr/local/bin/sasrelay
USER 10001:10001
VOLUME ["/var/lib/sasrelay"]
# The config must set [state] directory = "/var/lib/sasrelay" and keep the admin API on
# (its default, 127.0.0.1:9595): the health check asks it for /readyz, which fails while the
# store cannot be written or a source is blind. The image has no curl; the binary asks. (podman/buildah: build with --format docker, or OCI drops this.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/sasrelay", "healthcheck", "--config", "/etc/sasrelay/sasrelay.toml"]
ENTRYPOINT ["/usr/local/bin/sasrelay"]
CMD ["run", "--config", "/etc/sasrelay/sasrelay.toml", "--log-format", "json"]
