# The sasrelay image: one static executable on an empty base — no shell, no package manager,
# no shared library to patch, no base image to pull or pin — run as uid 10001 with the state
# directory as a volume.
#
#   deploy/static/build.sh                # the static binary and target/static/rootfs/
#   docker build -t sasrelay .
#   docker run --rm -v sasrelay-state:/var/lib/sasrelay \
#     -v "$PWD/sasrelay.toml:/etc/sasrelay/sasrelay.toml:ro" sasrelay
#
# deploy/static/check.sh (run by CI, where no container engine runs) proves this layout
# without one: it runs the binary from the staged tree under chroot as uid 10001 — version,
# config check, an online check and a daemon that turns ready and stops cleanly.

FROM scratch
COPY target/static/rootfs/ /
COPY --chown=10001:10001 target/static/rootfs/var/lib/sasrelay/ /var/lib/sasrelay/
USER 10001:10001
VOLUME ["/var/lib/sasrelay"]
# The config must set [state] directory = "/var/lib/sasrelay" and keep the admin API on
# (its default, 127.0.0.1:9595): the health check asks it for /readyz, which fails while the
# store cannot be written or a source is blind. The image has no curl; the binary asks.
# (podman/buildah: build with --format docker, or OCI drops this.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/sasrelay", "healthcheck", "--config", "/etc/sasrelay/sasrelay.toml"]
ENTRYPOINT ["/usr/local/bin/sasrelay"]
CMD ["run", "--config", "/etc/sasrelay/sasrelay.toml", "--log-format", "json"]
