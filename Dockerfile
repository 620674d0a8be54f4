# Image for compose.yaml: the betflow binary on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin betflow

FROM debian:bookworm-slim
# libssl3: librdkafka's TLS links the system OpenSSL (the build image has its headers).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/betflow /usr/local/bin/betflow
EXPOSE 8080
CMD ["betflow", "up"]
