# syntax=docker/dockerfile:1
# tradeops as one static binary in a distroless image: no shell, no package
# manager, runs as a non-root user; CA certificates for the exchanges' TLS.
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" -t tradeops .
#   docker run --env-file prod.env -p 8080:8080 tradeops          # serve
#   docker run --env-file prod.env tradeops /tradeops worker       # projections only
#
# No ENTRYPOINT: a platform's start command (render.yaml's dockerCommand,
# Kubernetes' command) then replaces the whole command line the same way
# everywhere. No HEALTHCHECK either (there is no curl to run one): the
# platform checks GET /healthz. internal/deploytest checks that GO_VERSION is
# go.mod's and that the go build line is the one `make build` runs.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -ldflags "-X main.version=${VERSION}" -o bin/tradeops ./cmd/tradeops

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/tradeops /tradeops
# distroless's nonroot user, by number so that runAsNonRoot can verify it
USER 65532:65532
EXPOSE 8080
CMD ["/tradeops", "serve"]
