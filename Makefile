# Two commands for a newcomer: `make run` and `make test`. Both set up whatever is
# missing first (scripts/devenv.sh: a .venv on glibc >= 2.39, otherwise a cached
# Debian 13 root run with bubblewrap) and are fast when nothing changed.
SHELL := /bin/bash
DEVENV := $(CURDIR)/scripts/devenv.sh
WORKDIR ?= $(CURDIR)/work
CONFIG ?= $(CURDIR)/pipeline/configs/kws.yaml
PYTEST_ARGS ?=
# Test processes (pytest-xdist): each takes whole test modules; tests/conftest.py keeps the modules that
# share the three tiny pipeline runs on one of them.
TEST_WORKERS ?= 2
SCALES ?= 1,10,30,100
SEARCH_SEEDS ?= 3

.PHONY: env run test bench bench-search bench-scale bench-monitoring bench-continuous demo-monitoring data shell clean

env:
	@$(DEVENV) ensure

run: env
	@$(DEVENV) exec tinyml-tfx run --config $(CONFIG) --workdir $(WORKDIR)

data: env
	@$(DEVENV) exec tinyml-tfx data generate --config $(CONFIG) --workdir $(WORKDIR)

test: env
	@$(DEVENV) exec python -m pytest tests --require-tools -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: env
	@$(DEVENV) exec python -m pipeline.bench --config $(CONFIG) --workdir $(CURDIR)/work/bench

# The model search against MLPerf Tiny's reference DS-CNN and the old default (about 40 minutes on 2 cores).
bench-search: env
	@$(DEVENV) exec python -m pipeline.bench.search --config $(CONFIG) --workdir $(CURDIR)/work/bench-search --search --seeds $(SEARCH_SEEDS)

# Growth of time, memory and disk with 1x..100x the synthetic data (each scale only if the disk
# keeps 10 GB free), and the DirectRunner's parallel modes at 10x; see pipeline/bench/scale.py.
bench-scale: env
	@$(DEVENV) exec python -m pipeline.bench.scale --config $(CONFIG) --workdir $(CURDIR)/work/bench-scale --scales $(SCALES)

# Field monitoring (pipeline/bench/monitoring.py): detection delay of a simulated field shift, false alarms
# without one, and one monitoring run over 1,000 devices' daily telemetry; saved to work/bench-monitoring.
# MONITORING_ARGS="--shifted-fraction 0.2" measures a shift that reaches a fifth of the fleet.
MONITORING_ARGS ?=
bench-monitoring: env
	@$(DEVENV) exec python -m pipeline.bench.monitoring --config $(CONFIG) --workdir $(CURDIR)/work/bench-monitoring $(MONITORING_ARGS)

# Continuous training (pipeline/bench/continuous.py): run 1 on span 0, a field campaign under rain written as
# span 1, run 2 on spans 0-1, and both int8 models on each span's test split (about 10 minutes on 2 cores).
bench-continuous: env
	@rm -rf $(CURDIR)/work/bench-continuous
	@$(DEVENV) exec python -m pipeline.bench.continuous --config $(CONFIG) --workdir $(CURDIR)/work/bench-continuous

# The field loop end to end (pipeline/bench/loop.py): train, a fleet on TFLite Micro, rain, drift detected,
# a labelled field campaign as span 1, retrain, accuracy before/after, canary and promote if it releases.
demo-monitoring: env
	@rm -rf $(CURDIR)/work/demo-monitoring
	@$(DEVENV) exec python -m pipeline.bench.loop --config $(CONFIG) --workdir $(CURDIR)/work/demo-monitoring

shell: env
	@$(DEVENV) exec bash

clean:
	rm -rf $(WORKDIR)
