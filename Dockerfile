# Multi-stage build of the gateway. `docker compose up --build` runs it with Postgres.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# No database during the build: query! macros use the committed .sqlx/ cache.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --bin onboarding-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=builder /src/target/release/onboarding-gateway /usr/local/bin/onboarding-gateway
COPY config/ ./config/
COPY migrations/ ./migrations/
USER gateway
ENV GATEWAY_ENV=development \
    GATEWAY__SERVER__HOST=0.0.0.0
EXPOSE 8080
CMD ["onboarding-gateway"]
