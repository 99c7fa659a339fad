# The two commands of the README: `make demo` and `make test`. Both set up a fresh Debian machine.
PY ?= .venv/bin/python
DEMO ?= pcaps/leshan-nosec-operations.pcap

.PHONY: demo test setup bench
demo:
	bash scripts/setup.sh
	.venv/bin/lwm2m-monitor analyze $(DEMO) --out out/demo.events.ndjson

test:
	bash scripts/setup.sh --tests
	$(PY) -m pytest -q -p no:cacheprovider

bench:
	bash scripts/setup.sh
	$(PY) bench/run.py
