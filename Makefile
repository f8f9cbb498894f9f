# ferrocache — build, run, test, benchmark.
# `make run` builds and starts the daemon on its defaults; `make test` installs what the tests
# need (memcached as the differential oracle, real clients) and runs the whole suite.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
PY_DEBIAN := /usr/bin/python3

.PHONY: all build release run test test-deps check lint fmt bench bench-quick bench-micro doc clean install \
	assets deb deb-test \
	conformance conformance-strict conformance-tls fuzz soak

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

# Starts the daemon on its defaults (127.0.0.1:11211, 64 MB). As root, memcached's rule applies:
# name a user with -u (here root, for a local try-out).
run: release
	./target/release/ferrocache $$( [ "$$(id -u)" = "0" ] && echo "-u root" ) -v

# What the tests need: the memcached oracle and libmemcached tools (apt), systemd's
# systemd-socket-activate and systemd-analyze (the socket activation test, the units' checks), Debian's pylibmc,
# pymemcache and python-binary-memcached, cyrus' PLAIN module for libmemcached's SASL,
# saslpasswd2 (sasl2-bin) and db_load (db-util) for the sasldb tests, perl's IO::Socket::SSL
# (libio-socket-ssl-perl) for memcached's TLS t/ files and the openssl CLI (test certificates),
# promtool (prometheus, for `promtool check metrics` on /metrics), the Python
# clients meta-memcache (PyPI, user site), elasticache-auto-discovery and emcache (PyPI, into
# $(PYDEPS)), and the node clients — memcached-elasticache, memcache-plus (Auto Discovery) and
# memjs (binary + SASL) — from npm into $(NPMDEPS) (node and npm come with the machine).
PYDEPS := /tmp/ferrocache-pydeps
NPMDEPS := /tmp/ferrocache-npm
test-deps:
	@if ! command -v memcached >/dev/null || ! command -v memcstat >/dev/null \
	    || ! command -v systemd-socket-activate >/dev/null || ! command -v systemd-analyze >/dev/null \
	    || ! ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 \
	    || ! command -v saslpasswd2 >/dev/null || ! command -v db_load >/dev/null \
	    || ! perl -MIO::Socket::SSL -e 1 2>/dev/null || ! command -v openssl >/dev/null \
	    || ! command -v promtool >/dev/null \
	    || ! $(PY_DEBIAN) -c 'import pylibmc, pymemcache, bmemcached' 2>/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq memcached libmemcached-tools \
	    python3-pylibmc python3-pymemcache python3-binary-memcached libsasl2-modules systemd \
	    sasl2-bin db-util libio-socket-ssl-perl openssl prometheus >/dev/null; \
	fi
	@python3 -c 'import meta_memcache' 2>/dev/null || python3 -m pip install -q meta-memcache
	@PYTHONPATH=$(PYDEPS) $(PY_DEBIAN) -c 'import elasticache_auto_discovery, emcache' 2>/dev/null \
	  || $(PY_DEBIAN) -m pip install -q --target $(PYDEPS) elasticache-auto-discovery==1.0.0 emcache==1.3.3
	@command -v npm >/dev/null || { echo "node and npm are needed for the Auto Discovery client tests"; exit 1; }
	@[ -d $(NPMDEPS)/node_modules/memcached-elasticache ] && [ -d $(NPMDEPS)/node_modules/memcache-plus ] \
	  && [ -d $(NPMDEPS)/node_modules/memjs ] \
	  || npm install --silent --no-audit --no-fund --prefix $(NPMDEPS) memcached-elasticache@1.1.1 \
	    memcache-plus@0.3.1 memjs@1.3.2 >/dev/null

# The bench tool's test runs the ferrocache-bench binary of the workspace's other package: build
# every binary first.
# The whole suite: cargo's tests, then memcached 1.6.18's own t/ files against the release binary, in
# plaintext (with the ssl_* files over TLS), then the Debian package installed and removed (deb-test;
# as root, else it says it skipped). Every file over TLS (`make conformance-tls`, about 10 more
# minutes) is a target of its own, to keep CI within its time.
test: test-deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --all-targets
	$(MAKE) conformance
	$(MAKE) deb-test

# Everything that needs no network and no apt: formatting, clippy, the unit tests, the tidy
# checks (tests/architecture.rs), the parser property tests and the integration tests that run
# ferrocache alone (no memcached oracle, no client libraries).
CHECK_TESTS := architecture cli text concurrency memory text_props binary_props bench_tool
check: lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --lib --bins $(addprefix --test ,$(CHECK_TESTS))

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# memcached 1.6.18's own t/ suite against the release binary (tests/conformance/run.py): fetches
# memcached's source once with `apt-get source memcached` (adds a bookworm deb-src entry and the
# few Debian packages it needs if missing) into $(CONFORMANCE_CACHE), runs the files of
# tests/conformance/files.txt, then the TLS files of tls-files.txt with SSL_TEST=1 (needs perl's
# IO::Socket::SSL), and prints one line per file and `N passed, M failed`. Files of
# tests/conformance/known-failures.txt (each a debt) print `KNOWN` and do not fail the run; any other
# failing file does. `.ci/run` runs it; `make conformance-strict` counts the known ones too.
CONFORMANCE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ferrocache/memcached-src
conformance: release
	$(PY_DEBIAN) tests/conformance/run.py --cache $(CONFORMANCE_CACHE) \
	  --bin $(or $(CARGO_TARGET_DIR),target)/release/ferrocache

conformance-strict: release
	$(PY_DEBIAN) tests/conformance/run.py --strict --cache $(CONFORMANCE_CACHE) \
	  --bin $(or $(CARGO_TARGET_DIR),target)/release/ferrocache

# Every t/ file over TLS (the harness's SSL_TEST=1: each connection it makes is TLS); files that
# fail only over TLS are in tests/conformance/known-failures-tls.txt.
conformance-tls: release
	$(PY_DEBIAN) tests/conformance/run.py --tls --cache $(CONFORMANCE_CACHE) \
	  --bin $(or $(CARGO_TARGET_DIR),target)/release/ferrocache

# Fuzzing (outside CI; nightly and cargo-fuzz: `cargo install cargo-fuzz`): writes the seed
# corpora from the tests' requests (fuzz/seeds.py), then runs each target of fuzz/ for
# FUZZ_SECONDS, one after the other, at nice 10. Targets are plain Rust (no unsafe), so they
# run without a sanitizer (`-s none`), with debug assertions (overflow checks) on; the build is
# done once, then each binary runs on its corpus. A crash stops
# the run; its input is in fuzz/artifacts/TARGET/ (`cargo +nightly fuzz run TARGET FILE` replays it).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := text meta binary udp exec tls
FUZZ_BIN = $(or $(CARGO_TARGET_DIR),fuzz/target)/$$(rustc +nightly -vV | sed -n 's/^host: //p')/release
fuzz:
	python3 fuzz/seeds.py
	cd fuzz && $(CARGO) +nightly fuzz build -s none
	for t in $(FUZZ_TARGETS); do mkdir -p fuzz/corpus/$$t fuzz/artifacts/$$t; \
	  nice -n 10 $(FUZZ_BIN)/$$t fuzz/corpus/$$t -artifact_prefix=fuzz/artifacts/$$t/ \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; done

# Soak (outside CI): MINUTES of hundreds of connections over text, meta and binary with
# checksummed values, clients killed mid-request and evictions (benches/soak.py); prints RSS,
# descriptors and connections over time; fails on a corrupt read or an unexpected reply.
MINUTES ?= 5
soak: release
	nice -n 10 $(PY_DEBIAN) benches/soak.py --bin $(or $(CARGO_TARGET_DIR),target)/release/ferrocache \
	  --minutes $(MINUTES) --markdown

# Side-by-side load benchmark against memcached (writes docs/benchmarks.md), plus micro benchmarks.
bench: release test-deps
	bash benches/suite.sh full
	bash benches/memory.sh full
	bash benches/latency.sh full
	bash benches/sweep.sh full
	bash benches/tls.sh full
	$(CARGO) bench --bench parse --bench store --bench ring

# The same suite, short (under a minute).
bench-quick: release test-deps
	bash benches/suite.sh quick

bench-micro:
	$(CARGO) bench --bench parse --bench store --bench ring

doc:
	$(CARGO) doc --workspace --no-deps

# The man page and the bash, zsh and fish completions, generated from the clap tree by the
# release binary's hidden `assets` command (cli/assets.rs) into $(ASSETS).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ASSETS := $(TARGET_DIR)/release/assets
assets: release
	$(TARGET_DIR)/release/ferrocache assets $(ASSETS)
	gzip -9nkf $(ASSETS)/ferrocache.1

# The Debian package (cargo-deb, installed once with `cargo install`; [package.metadata.deb] in
# Cargo.toml lists what goes where; dist/debian/ holds the configuration file and the maintainer
# scripts): $(TARGET_DIR)/debian/ferrocache_VERSION-1_ARCH.deb.
deb: assets
	@command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked
	$(CARGO) deb -p ferrocache --no-build --strip

# The package end to end as root (tests/deb.sh: dpkg -i, the files, the user, the daemon on the
# shipped configuration, dpkg -r and purge), and `make install DESTDIR=…` placing the same files.
deb-test: deb
	rm -rf $(TARGET_DIR)/install-test
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(TARGET_DIR))/install-test PREFIX=/usr \
	  UNITDIR=/lib/systemd/system >/dev/null
	sh tests/deb.sh "$$(ls -t $(TARGET_DIR)/debian/ferrocache_*.deb | head -n 1)" $(TARGET_DIR)/install-test

# A source install: what the package installs, under $(DESTDIR)$(PREFIX) (units under $(UNITDIR),
# their ExecStart= pointing at $(BINDIR)); the configuration file only if there is none yet; and,
# as root without DESTDIR, the package's postinst (the ferrocache system user, daemon-reload).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: assets
	install -Dm0755 $(TARGET_DIR)/release/ferrocache $(DESTDIR)$(BINDIR)/ferrocache
	install -Dm0755 $(TARGET_DIR)/release/ferrocache-bench $(DESTDIR)$(BINDIR)/ferrocache-bench
	for u in ferrocache.service ferrocache.socket ferrocache@.service; do \
	  sed -e 's|/usr/bin/ferrocache|$(BINDIR)/ferrocache|' \
	    -e 's|/etc/ferrocache/|$(SYSCONFDIR)/ferrocache/|' dist/systemd/$$u > $(ASSETS)/$$u && \
	  install -Dm0644 $(ASSETS)/$$u $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	sed -e 's|/usr/bin/ferrocache|$(BINDIR)/ferrocache|' -e 's|/etc/ferrocache/|$(SYSCONFDIR)/ferrocache/|' \
	  -e 's|/usr/share/ferrocache/|$(PREFIX)/share/ferrocache/|' \
	  dist/systemd/ferrocache.service.d/warm-restart.conf > $(ASSETS)/warm-restart.conf
	install -Dm0644 $(ASSETS)/warm-restart.conf $(DESTDIR)$(PREFIX)/share/ferrocache/warm-restart.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/ferrocache/ferrocache.conf ] || \
	  install -Dm0644 dist/debian/ferrocache.conf $(DESTDIR)$(SYSCONFDIR)/ferrocache/ferrocache.conf
	install -Dm0644 $(ASSETS)/ferrocache.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/ferrocache.1.gz
	install -Dm0644 $(ASSETS)/ferrocache.bash \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ferrocache
	install -Dm0644 $(ASSETS)/_ferrocache $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_ferrocache
	install -Dm0644 $(ASSETS)/ferrocache.fish \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/ferrocache.fish
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then sh dist/debian/postinst configure; \
	elif [ -z "$(DESTDIR)" ]; then \
	  echo "not root: run 'sudo sh dist/debian/postinst configure' for the ferrocache user"; fi

clean:
	$(CARGO) clean
