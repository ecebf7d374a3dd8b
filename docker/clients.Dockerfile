# The stream clients (python -m clients.run) and the InfluxDB setup command. CPU only:
# decoding, tracking and analytics run here; inference runs in the triton service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# libgl/glib for OpenCV's video I/O (ffmpeg is bundled in the wheel)
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core/ core/
COPY simulator/ simulator/
COPY clients/ clients/
COPY serving/ serving/
COPY modelops/ modelops/
COPY launchers/ launchers/
COPY tracking/ tracking/
COPY analytics/ analytics/
COPY visits/ visits/
COPY sinks/ sinks/
COPY monitoring/ monitoring/
COPY scripts/ scripts/
COPY benchmarks/ benchmarks/
COPY configs/ configs/
# numpy stays on 1.26 (tritonclient 2.50 and the python backend need numpy < 2)
RUN pip install . "numpy==1.26.4" && python -c "import numpy; assert numpy.__version__.startswith('1.')"
RUN useradd --create-home --uid 10001 retail && mkdir -p /app/outputs /app/.run && chown -R retail /app/outputs /app/.run
USER retail
# The cameras of configs/cameras.example.yaml (simulated) unless --streams-file names others;
# start-up problems are reported and waited out, not crash-looped. Health: the file below.
CMD ["python", "-m", "clients.run", "--config", "configs/app_config.yaml", \
     "--streams-file", "configs/cameras.example.yaml", "--health-file", "/tmp/clients-health.json", "--wait-on-error"]
