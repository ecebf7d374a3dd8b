"""docker-compose.yml, .env.example and docker/: validated by parsing (no Docker engine here).

When a compose CLI is installed (``docker compose`` plugin or ``docker-compose``), its own
``config`` validation also runs (it needs no engine).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
SECRET = re.compile(r"TOKEN|PASSWORD|SECRET", re.I)


def test_the_services_are_there():
    assert {"triton", "influxdb", "grafana", "clients", "influx-setup", "engines"} <= set(SERVICES)


def test_the_seeds_generator_command_runs_as_written():
    """`docker-compose run --rm retail-vision python scripts/generate_sample_data.py` (the seed's data README)."""
    tool = SERVICES["retail-vision"]
    assert tool["profiles"] == ["tools"]  # `docker compose up` does not start it; `run` does
    assert tool["build"]["dockerfile"] == "docker/clients.Dockerfile"
    assert "./data:/app/data" in tool["volumes"]  # writable: the files land in the host's data/sample/
    assert tool["command"][:2] == ["python", "scripts/generate_sample_data.py"]
    assert (ROOT / "scripts/generate_sample_data.py").is_file()
    image = (ROOT / "docker/clients.Dockerfile").read_text()
    for pkg in ("scripts", "simulator", "tracking", "analytics", "sinks", "core"):  # what the generator imports
        assert f"COPY {pkg}/ {pkg}/" in image, pkg
    assert "WORKDIR /app" in image


def test_the_clients_image_holds_every_package_it_installs():
    """`pip install .` in the clients image installs the packages pyproject.toml lists: each must be
    copied in first (visits/ once was not: the image's clients could not link store visits)."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    image = (ROOT / "docker/clients.Dockerfile").read_text()
    missing = [p.rstrip("*") for p in include if f"COPY {p.rstrip('*')}/ {p.rstrip('*')}/" not in image]
    assert not missing, f"docker/clients.Dockerfile does not COPY {missing}"


def test_every_published_port_is_bound_to_localhost():
    published = [(name, p) for name, s in SERVICES.items() for p in s.get("ports", [])]
    assert len(published) >= 5
    for name, p in published:
        assert str(p).startswith("127.0.0.1:"), f"{name}: port {p} is reachable from outside the host"


def test_secrets_come_from_the_env_file_only():
    for name, s in SERVICES.items():
        for key, value in (s.get("environment") or {}).items():
            if SECRET.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", str(value)), f"{name}: {key} is inline"
        if name == "grafana":  # its secrets are interpolated one by one: the all-access token never reaches it
            assert "env_file" not in s and "INFLUXDB_TOKEN" not in json.dumps(s), "grafana must not get INFLUXDB_TOKEN"
        elif any(SECRET.search(k) for k in (s.get("environment") or {})) or name in ("influxdb", "clients"):
            assert s.get("env_file") == ".env", f"{name}: secrets must come from env_file .env"
    for k, v in ENV_EXAMPLE.items():
        if SECRET.search(k):
            assert v == "", f".env.example: {k} must be empty (a shipped placeholder would be accepted)"


def test_compose_refuses_to_start_without_each_secret():
    """Every secret is interpolated as ``${VAR:?message naming VAR}``: with it empty or unset,
    ``docker compose`` stops before starting anything, with that one line."""
    text = (ROOT / "docker-compose.yml").read_text()
    required = {m.group(1): m.group(2) for m in re.finditer(r"\$\{([A-Z_][A-Z0-9_]*):\?([^}]*)\}", text)}
    secrets = {k for k in ENV_EXAMPLE if SECRET.search(k)}
    assert secrets == {"DOCKER_INFLUXDB_INIT_PASSWORD", "INFLUXDB_TOKEN", "GF_SECURITY_ADMIN_PASSWORD",
                       "GRAFANA_INFLUXDB_PASSWORD"}
    for k in secrets:
        assert k in required, f"{k}: not required by docker-compose.yml"
        assert k in required[k] and ".env" in required[k], f"{k}: the message must name the variable and .env"


def test_every_variable_used_is_documented_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert used and used <= set(ENV_EXAMPLE), sorted(used - set(ENV_EXAMPLE))
    # what the services read from .env themselves
    assert {"INFLUXDB_TOKEN", "DOCKER_INFLUXDB_INIT_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD",
            "GRAFANA_INFLUXDB_PASSWORD"} <= set(ENV_EXAMPLE)


def test_long_running_services_have_health_checks_and_dependencies_wait_for_them():
    for name in ("triton", "influxdb", "grafana", "clients"):
        hc = SERVICES[name]["healthcheck"]
        assert hc["test"] and hc["retries"] >= 3, name
    for name, s in SERVICES.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health, which has no check"
            else:
                assert cond["condition"] == "service_completed_successfully"
                assert SERVICES[dep].get("restart") == "no", f"{dep} is a one-shot job"
    assert SERVICES["clients"]["depends_on"]["triton"]["condition"] == "service_healthy"


def test_triton_gets_a_gpu_and_the_model_repository():
    for name in ("triton", "engines"):
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices), name
    assert "./model_repository:/models:ro" in SERVICES["triton"]["volumes"]
    cmd = " ".join(SERVICES["triton"].get("command") or [])
    dockerfile = (ROOT / SERVICES["triton"]["build"]["dockerfile"]).read_text()
    assert "--model-repository=/models" in cmd + dockerfile
    # TensorRT configs are the default config.pbtxt: Triton must not be pointed at the CPU variants
    assert "model-config-name" not in cmd + dockerfile
    assert 'platform: "tensorrt_plan"' in (ROOT / "model_repository/yolov8n/config.pbtxt").read_text()


def test_grafana_is_provisioned_from_the_repo():
    vols = SERVICES["grafana"]["volumes"]
    assert "./configs/grafana/provisioning:/etc/grafana/provisioning:ro" in vols
    mount = next(v for v in vols if v.startswith("./configs/grafana/dashboards:"))
    prov = yaml.safe_load((ROOT / "configs/grafana/provisioning/dashboards/retail.yaml").read_text())
    assert mount.split(":")[1] == prov["providers"][0]["options"]["path"]
    env = SERVICES["grafana"]["environment"]
    assert env["INFLUXDB_URL"] == "http://influxdb:8086"  # what the datasource file expands
    ds = (ROOT / "configs/grafana/provisioning/datasources/influxdb.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", ds))
    assert used and used <= set(env), sorted(used - set(env))  # every variable the datasource needs is set
    # its own read-only login, the one influx-setup creates (same variables)
    assert env["GRAFANA_INFLUXDB_PASSWORD"] == SERVICES["influx-setup"]["environment"]["GRAFANA_INFLUXDB_PASSWORD"]
    assert "INFLUXDB_TOKEN" not in used


def test_influxdb_is_initialised_and_retention_applied():
    env = SERVICES["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] and env["DOCKER_INFLUXDB_INIT_BUCKET"].startswith("retail_")
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUXDB_TOKEN")
    setup = SERVICES["influx-setup"]
    assert setup["command"][:3] == ["python", "-m", "sinks.setup"]
    assert setup["environment"]["RVA_INFLUXDB_VERSION"] == "2" and "--version" in setup["command"]
    # retention edits in configs/app_config.yaml reach `docker compose run --rm influx-setup` without a rebuild
    assert "./configs:/app/configs:ro" in setup.get("volumes", []), "influx-setup must mount ./configs"
    assert setup["command"][setup["command"].index("--config") + 1].startswith("configs/")


def test_referenced_paths_exist():
    for name, s in SERVICES.items():
        b = s.get("build")
        if b:
            assert (ROOT / b["context"] / b["dockerfile"]).is_file(), f"{name}: {b['dockerfile']}"
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./") and src not in ("./outputs", "./data/calibration"):  # created at run time
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"


def test_python_images_keep_numpy_below_2_and_opencv_on_4_10():
    for f in ("triton.Dockerfile", "engines.Dockerfile"):
        text = (ROOT / "docker" / f).read_text()
        assert '"numpy==1.26.4"' in text and '"opencv-python-headless==4.10.0.84"' in text, f
    assert "numpy==1.26.4" in (ROOT / "docker/clients.Dockerfile").read_text()
    assert "COPY serving/" in (ROOT / "docker/triton.Dockerfile").read_text()  # python-backend models import it


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_cli_validates_the_file(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI installed (the docker CLI here has no compose plugin); parsed checks above")
    # in a copy, with .env made from the example (the services' env_file must exist for `config`)
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    example = (ROOT / ".env.example").read_text()
    (tmp_path / ".env").write_text(example)
    r = subprocess.run([*cli, "config", "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode != 0 and re.search(r"INFLUXDB_TOKEN|PASSWORD", r.stderr), r.stderr  # secrets not set
    (tmp_path / ".env").write_text(re.sub(r"^(\w*(?:TOKEN|PASSWORD)\w*)=$", r"\1=s3cret-for-the-test", example,
                                          flags=re.M))
    r = subprocess.run([*cli, "config", "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr


def _default(expr: str) -> str:
    """Compose's ${VAR:-default} with VAR taken from .env.example (what a fresh .env holds)."""
    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*):-([^}]*)\}", lambda m: ENV_EXAMPLE.get(m.group(1), m.group(2)), expr)


def _flag(cmd: list[str], name: str) -> str:
    assert name in cmd, f"clients command lacks {name}: {cmd}"
    return cmd[cmd.index(name) + 1]


def test_clients_start_as_shipped_with_streams_and_a_health_check(tmp_path):
    """The clients service: cameras from a compose streams file that exists and loads, start-up
    problems waited out (no crash loop), and a health check on the file the runner writes."""
    from clients.config import load_app_config
    from clients.health import HealthFile
    from clients.health import main as health_main

    s = SERVICES["clients"]
    cmd = s["command"]
    assert cmd[:3] == ["python", "-m", "clients.run"] and "--wait-on-error" in cmd
    assert "./configs:/app/configs:ro" in s["volumes"]
    streams_file = _default(_flag(cmd, "--streams-file"))
    assert streams_file.startswith("configs/"), streams_file  # inside the mounted ./configs
    cfg = load_app_config(ROOT / _flag(cmd, "--config"), streams_file=ROOT / streams_file)
    assert cfg.streams, f"{streams_file}: no streams: the service would only wait"
    assert ENV_EXAMPLE.get("CAMERAS_FILE") and (ROOT / "configs" / ENV_EXAMPLE["CAMERAS_FILE"]).is_file()
    # the health check reads the file the runner writes, and fails until the runner reports "running"
    hc = s["healthcheck"]
    health_file = _flag(cmd, "--health-file")
    assert hc["test"][:4] == ["CMD", "python", "-m", "clients.health"] and health_file in hc["test"]
    assert hc["retries"] >= 3 and hc.get("start_period")
    max_age = float(_flag(hc["test"], "--max-age"))
    assert max_age >= 3 * 10  # the runner reports every 10 s (--health-interval default)
    probe = tmp_path / "health.json"
    assert health_main([str(probe), "--max-age", str(max_age)]) == 1  # not written yet
    HealthFile(probe).write("waiting", "no streams configured")
    assert health_main([str(probe), "--max-age", str(max_age)]) == 1
    HealthFile(probe).write("running")
    assert health_main([str(probe), "--max-age", str(max_age)]) == 0


def test_clients_outputs_are_writable_by_the_image_user():
    """No root-owned ./outputs bind mount: a named volume, initialised from the image's
    /app/outputs, which the Dockerfile hands to the user the image runs as."""
    s = SERVICES["clients"]
    out_dir = yaml.safe_load((ROOT / "configs/app_config.yaml").read_text())["sinks"]["json"]["output_dir"]
    target = f"/app/{out_dir}"
    mounts = [v for v in s["volumes"] if str(v).split(":")[1] == target]
    assert len(mounts) == 1, mounts
    src = mounts[0].split(":")[0]
    assert not src.startswith((".", "/")) and src in COMPOSE["volumes"], f"{target} must be a named volume, not {src}"
    dockerfile = (ROOT / "docker/clients.Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M).group(1)
    assert re.search(rf"chown -R {user}\b[^\n]*{target}", dockerfile), "the image must own its output dir"
