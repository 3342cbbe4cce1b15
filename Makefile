# The README's two commands are `make run` and `make test`; CI runs `.ci/run`, which is `make test`.

.PHONY: run test bench bench-quick

# Builds everything (host and guests, release) and serves the built-in example manifest.
run:
	@scripts/setup
	cargo run --release --bin tether -- serve

# Runs the whole test suite: the formatting check (rustfmt.toml), unit tests, and integration
# tests against the real binary (and, for FastCGI, a real nginx).
test:
	@scripts/setup --test
	cargo fmt --check
	cargo check --quiet -p bench --all-targets
	cargo test

# Runs every benchmark and rewrites BENCHMARKS.md (how: the top of BENCHMARKS.md and bench/run).
bench:
	@scripts/setup
	bench/run

# The same, with fewer rounds and shorter runs (under 5 minutes).
bench-quick:
	@scripts/setup
	QUICK=1 bench/run
