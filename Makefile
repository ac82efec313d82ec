# Sluice — one build, one test command. Every target installs what it needs.
SHELL := /bin/bash
NPM ?= npm

.PHONY: all deps build test host-packages demo bench clean native crash-long install deb

all: build

node_modules/.package-lock.json: package.json package-lock.json packages/*/package.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

native: deps
	$(NPM) run build --workspace=@sluice/native

# npm links a workspace's bin only if its target exists, and at `npm ci` time
# dist/ does not yet: link `sluice` now, so `npx sluice` works after setup.
build: native
	npx tsc -b
	chmod +x packages/cli/dist/main.js
	$(NPM) rebuild --ignore-scripts --no-audit --no-fund @sluice/cli >/dev/null

# The host packages first (test/setup-host.sh: installs them as root, names
# them otherwise), then the build: g++ and python3 are among them. A run ends
# with every skipped test and its reason (test/support/skip-reporter.ts).
test: host-packages
	@$(MAKE) --no-print-directory build
	npx vitest run

host-packages:
	@test/setup-host.sh

clean:
	rm -rf packages/*/dist packages/*/build node_modules

demo: build
	node packages/cli/dist/main.js demo

# Throughput, latency and memory as ratios to this machine's own bounds,
# measured in the same run (docs/performance.md). Needs ~5 GB free in $TMPDIR.
# BENCH_ARGS passes options, e.g. BENCH_ARGS='--only small --json out.json'.
# Against an earlier build, interleaved (ratios; bench/run.mjs's header):
#   git worktree add ../before COMMIT --detach && make -C ../before build
#   make bench BENCH_ARGS='--baseline ../before --rounds 3'
bench: build
	node bench/run.mjs $(BENCH_ARGS)

# The long crash-injection run (not in CI): more files, more kills.
crash-long: build
	SLUICE_CRASH_FILES=3000 SLUICE_CRASH_KILLS=150 npx vitest run test/crash

# Install the built application, units, sysusers/tmpfiles files, the sshd
# drop-in and an example configuration (deploy/install.sh; docs/operations.md).
# It copies what `make build` produced and never builds or downloads itself:
# run `make build` first. Honours PREFIX (under /usr), DESTDIR and NODE.
PREFIX ?= /usr/local
install:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' $(if $(NODE),NODE='$(NODE)') sh deploy/install.sh

# The Debian package sluice_<version>_<arch>.deb, from a staged
# `make install PREFIX=/usr` packed with dpkg-dev's tools
# (packaging/deb/build.sh; docs/operations.md, "Installing from the Debian
# package"). DEB_OUT is the output directory (default: here);
# SLUICE_DEB_VERSION builds another version number.
deb: build
	$(if $(DEB_OUT),DEB_OUT='$(DEB_OUT)') $(if $(SLUICE_DEB_VERSION),SLUICE_DEB_VERSION='$(SLUICE_DEB_VERSION)') sh packaging/deb/build.sh
