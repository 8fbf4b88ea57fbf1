# Builds pairgate as a static binary (no cgo) into a minimal image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/pairgate ./cmd/pairgate \
 && mkdir -p /out/state/default /out/state/work

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pairgate /usr/local/bin/pairgate
COPY docker/pairgate.yaml /etc/pairgate/pairgate.yaml
# Named volumes mounted here start with the image's (non-root) ownership.
COPY --from=build --chown=65532:65532 /out/state /var/lib/pairgate
ENV PAIRGATE_CONFIG=/etc/pairgate/pairgate.yaml
EXPOSE 18789
ENTRYPOINT ["/usr/local/bin/pairgate"]
CMD ["serve"]
