# Wiretrail: two commands do all setup on a fresh Debian machine (as root).
#   make demo   install what is needed, replay the shipped demo breach, print its story and write its report
#   make test   install what tests need (system packages too), start PostgreSQL, run every test

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES      := python3-venv python3-dev gcc libpcap-dev graphviz
TEST_SYSTEM_PACKAGES := $(SYSTEM_PACKAGES) postgresql tcpdump tcpreplay iproute2 chromium poppler-utils tshark age
DEMO_DB ?= demo-out/wiretrail.db

.PHONY: demo test compiled system-deps test-system-deps bench clean

define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

system-deps:
	$(call apt_install,$(SYSTEM_PACKAGES))

test-system-deps:
	$(call apt_install,$(TEST_SYSTEM_PACKAGES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,compiled]'
	touch $@

# The core's modules compiled with Cython (recorder/core/compiled.py says why and how they are
# kept current); only the modules changed since the last build are compiled again.
compiled: system-deps $(VENV)/.installed
	$(BIN)/python -m recorder.core.build_compiled

# The demo: a small shop's breach (captures/demo-breach.pcap, built by captures/make_demo_breach.py)
# replayed into a store; the incident story, the accounts to reset and the data at risk printed;
# the owner's report written.
DEMO_REPORT ?= demo-out/report.html

demo: system-deps $(VENV)/.installed compiled
	@mkdir -p $(dir $(DEMO_DB)) $(dir $(DEMO_REPORT))
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_REPORT)
	$(BIN)/python captures/make_demo_breach.py --check
	$(BIN)/wiretrail replay --db $(DEMO_DB) --report $(DEMO_REPORT) captures/demo-breach.pcap > /dev/null
	$(BIN)/wiretrail incidents --db $(DEMO_DB)
	@for id in $$($(BIN)/wiretrail incidents --db $(DEMO_DB) --format json | $(BIN)/python -c 'import json,sys; print(" ".join(i["id"] for i in json.load(sys.stdin)))'); do \
	  echo; $(BIN)/wiretrail incident --db $(DEMO_DB) $$id || exit 1; done
	@echo
	$(BIN)/wiretrail accounts --db $(DEMO_DB) --reset-list
	$(BIN)/wiretrail data-at-risk --db $(DEMO_DB)
	@echo
	@echo "The owner's report: $(abspath $(DEMO_REPORT))"

# Every test against the compiled core, then the parsers' tests once more as Python, as an
# install without the compiled modules runs them.
test: test-system-deps $(VENV)/.installed compiled
	WIRETRAIL_TEST_PG_URL="$$(timeout 600 bash tests/pg_start.sh)" $(BIN)/python -m pytest -q -ra
	WIRETRAIL_PURE_PYTHON=1 $(BIN)/python -m pytest -q -ra tests/core/apps

# The peers run beside wiretrail: argus and tshark from Debian, nfstream in a venv of its own.
bench: system-deps $(VENV)/.installed compiled
	$(call apt_install,argus-server tshark)
	test -x bench/.nfstream-venv/bin/python || ($(PYTHON) -m venv bench/.nfstream-venv && bench/.nfstream-venv/bin/pip install -q nfstream)
	$(BIN)/python bench/bench_ingest.py --nfstream-python bench/.nfstream-venv/bin/python

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis recorder/core/_compiled
