# Sluice — one build, one test command. Every target installs what it needs.
SHELL := /bin/bash
NPM ?= npm

.PHONY: all deps build test demo bench clean native crash-long

all: build

node_modules/.package-lock.json: package.json package-lock.json packages/*/package.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

native: deps
	$(NPM) run build --workspace=@sluice/native

build: native
	npx tsc -b
	chmod +x packages/cli/dist/main.js

test: build
	npx vitest run

clean:
	rm -rf packages/*/dist packages/*/build node_modules

demo: build
	node packages/cli/dist/main.js demo

# The long crash-injection run (not in CI): more files, more kills.
crash-long: build
	SLUICE_CRASH_FILES=3000 SLUICE_CRASH_KILLS=150 npx vitest run test/crash
