# mysql2ddb — entry points. Every target installs what it needs (Debian, as root).
JOB ?= job.toml
CARGO ?= cargo
RELEASE_BIN := target/release/mysql2ddb

.PHONY: all build build-dev build-bench test demo export import bench bench-export bench-sync bench-import bench-cdc bench-capture bench-managed bench-migrate bench-summary services services-down toolchain clean

all: build

toolchain:
	@scripts/toolchain.sh

build: toolchain
	$(CARGO) build --release

## The build `make demo` and `make test` share: the test profile and features, so the second
## command compiles only the tests (the release build is for benchmarks and `make export/import`).
build-dev: toolchain
	$(CARGO) test --no-run --features bench-tools

## The benchmark tools (capacity proxy, load and change generators) are built for benchmarks only.
build-bench: toolchain
	$(CARGO) build --release --features bench-tools

services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

## make test: install and start the local servers, then run every test (unit + integration).
test: toolchain services
	scripts/check-circles.py
	$(CARGO) test --no-fail-fast --features bench-tools
	$(CARGO) test --no-fail-fast --features bench-tools --test main -- --ignored --test-threads=1

## make demo: servers up, sample database loaded, the pipeline run as far as it exists.
demo: build-dev services
	scripts/demo.sh

## make export JOB=job.toml: run `mysql2ddb export` from a job file.
export: build
	$(RELEASE_BIN) export --job $(JOB)

## make import JOB=job.toml: run `mysql2ddb import` from the job file's [import] section.
import: build
	$(RELEASE_BIN) import --job $(JOB)

## make bench: every benchmark, then one summary table of every ratio; results printed and
## written under bench-out/ (summary.md holds the table).
bench: bench-export bench-sync bench-import bench-cdc bench-capture bench-managed bench-migrate
	scripts/bench-summary.sh

## make bench-summary: the summary table of what the benchmarks recorded last.
bench-summary:
	scripts/bench-summary.sh

bench-export: build-bench services
	scripts/bench-export.sh

bench-sync: build-bench services
	scripts/bench-sync.sh

bench-import: build-bench services
	scripts/bench-import.sh

bench-cdc: build-bench services
	scripts/bench-cdc.sh

bench-capture: build-bench services
	scripts/bench-capture.sh

## make bench-migrate: `migrate` against the separate commands on the same run.
bench-migrate: build-bench services
	scripts/bench-migrate.sh

## make bench-managed: write stalls at the export's start and InnoDB purge during it, per consistency mode.
bench-managed: build-bench services
	scripts/bench-managed.sh

clean:
	rm -rf target bench-out demo-out
