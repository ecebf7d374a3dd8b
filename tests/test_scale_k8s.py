"""deploy/k8s: every kustomization renders with ``kubectl kustomize`` (offline), every object
validates strictly against the Kubernetes API schema (tests/k8s_schema.py), and the wiring
holds: Service selectors and target ports, Triton's probes, GPU, metrics port and model
volume, the HPA's metric = the adapter rule's, the clients' shard count = replicas, the
clients' Triton URL = the headless Service, ConfigMaps from configs/, secrets by reference only.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/chain", "overlays/influxdb-cloud", "prometheus-adapter"]
APPS = ["base", "overlays/chain", "overlays/influxdb-cloud"]
SECRET = "retail-vision-secrets"
SECRET_KEYS = {"influxdb-token", "grafana-admin-user", "grafana-admin-password", "grafana-influxdb-password"}
def _leaves(node, key: str = ""):
    """(key, value) of every scalar in a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, key)
    else:
        yield key, node


SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|ADMIN_USER|API_KEY", re.I)



def schema():
    """tests/k8s_schema.py needs the `kubernetes` client (the `test` extra pins it)."""
    return pytest.importorskip("tests.k8s_schema", reason="the `kubernetes` client (pip install -e '.[test]') "
                               "carries the API schema the manifests are validated against")


_cache: dict[str, list[dict]] = {}


def render(name: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: it renders the kustomizations (kubectl kustomize)")
    if name not in _cache:
        r = subprocess.run(["kubectl", "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"kubectl kustomize deploy/k8s/{name} failed:\n{r.stderr}"
        _cache[name] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return _cache[name]


def one(objs, kind, name):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} in the render"
    return found[0]


def named(objs, kind, prefix):
    """A generated ConfigMap (name + hash suffix)."""
    found = [o for o in objs if o["kind"] == kind and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{prefix}-<hash>: {len(found)}"
    return found[0]


def pod_spec(o):
    return o["spec"]["template"]["spec"]


def env_of(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_and_every_object_matches_the_api_schema(name):
    objs = render(name)
    assert objs
    k8s_schema = schema()
    errors = [e for o in objs for e in k8s_schema.schema_errors(o)]
    assert not errors, "\n".join(errors)


def test_the_schema_check_is_strict():
    k8s_schema = schema()
    dep = yaml.safe_load((K8S / "base" / "triton" / "deployment.yaml").read_text())
    assert k8s_schema.schema_errors(dep) == []
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    dep["spec"]["replicas"] = "2"
    errs = k8s_schema.schema_errors(dep)
    assert any("imagePullPolcy: unknown field of V1Container" in e for e in errs), errs
    assert any("spec.replicas: must be an integer" in e for e in errs), errs
    del dep["spec"]["selector"]
    dep["spec"]["replicas"] = 2
    dep["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolcy")
    assert any("selector" in e for e in k8s_schema.schema_errors(dep))  # a required field
    assert k8s_schema.schema_errors({"apiVersion": "v9", "kind": "Nope", "metadata": {"name": "x"}})


@pytest.mark.parametrize("name", APPS)
def test_services_select_pods_and_ports(name):
    objs = render(name)
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    for w in workloads:  # a workload's selector matches its own pod labels
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items(), w["metadata"]["name"]
    for svc in (o for o in objs if o["kind"] == "Service" and o["spec"].get("type") != "ExternalName"):
        sel = svc["spec"]["selector"]
        pods = [w for w in workloads if sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, f"Service/{svc['metadata']['name']} selects no pods"
        ports = {p["name"]: p["containerPort"] for w in pods for c in pod_spec(w)["containers"] for p in c["ports"]} \
            if any("ports" in c for w in pods for c in pod_spec(w)["containers"]) else {}
        for p in svc["spec"].get("ports", []):
            assert p["targetPort"] in ports, f"Service/{svc['metadata']['name']}: no container port {p['targetPort']}"
            assert ports[p["targetPort"]] == p["port"]  # same numbers inside and out


@pytest.mark.parametrize("name", APPS)
def test_no_container_sets_a_variable_twice(name):
    for w in (o for o in render(name) if o["kind"] in ("Deployment", "StatefulSet")):
        for c in pod_spec(w)["containers"]:
            names = [e["name"] for e in c.get("env", [])]
            assert len(names) == len(set(names)), (w["metadata"]["name"], names)


@pytest.mark.parametrize("name", APPS)
def test_triton_probes_gpu_metrics_and_models(name):
    objs = render(name)
    dep = one(objs, "Deployment", "triton")
    c = pod_spec(dep)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == ports["metrics"] and ann["prometheus.io/path"] == "/metrics"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    assert mounts["model-repository"]["mountPath"] == "/models"
    claim = vols["model-repository"]["persistentVolumeClaim"]["claimName"]
    one(objs, "PersistentVolumeClaim", claim)
    headless = one(objs, "Service", "triton-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in headless["spec"]["ports"]] == [ports["grpc"]]


def test_hpa_scales_triton_on_the_adapter_metric():
    objs = render("base")
    hpa = one(objs, "HorizontalPodAutoscaler", "triton")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", "triton")
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    rules = yaml.safe_load(one(render("prometheus-adapter"), "ConfigMap", "adapter-config")["data"]["config.yaml"])
    rule = next(r for r in rules["rules"] if r["name"]["as"] == metric)
    assert "nv_inference_queue_duration_us" in rule["seriesQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]
    chain = one(render("overlays/chain"), "HorizontalPodAutoscaler", "triton")
    assert chain["spec"]["minReplicas"] == 2 and chain["spec"]["maxReplicas"] == 8


@pytest.mark.parametrize("name", APPS)
def test_clients_statefulset_shards_and_triton_url(name, monkeypatch):
    from clients.config import parse_app_config
    from clients.shards import ORDINAL_RE

    objs = render(name)
    sts = one(objs, "StatefulSet", "clients")
    gov = one(objs, "Service", sts["spec"]["serviceName"])
    assert gov["spec"]["clusterIP"] == "None"
    c = pod_spec(sts)["containers"][0]
    env = env_of(c)
    assert int(env["RVA_SHARD_COUNT"]["value"]) == sts["spec"]["replicas"]  # ordinal -> shard, all covered
    assert ORDINAL_RE.search(f"{sts['metadata']['name']}-{sts['spec']['replicas'] - 1}")
    assert c["command"][:3] == ["python", "-m", "clients.shard_run"]
    health_dir = env["RVA_HEALTH_DIR"]["value"]  # the store runners' health files, read by the probes
    for probe in ("startupProbe", "livenessProbe"):
        script = " ".join(c[probe]["exec"]["command"])
        assert f"{health_dir}/*.json" in script and "python -m clients.health" in script, (probe, script)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    args = dict(zip(c["command"][3::2], c["command"][4::2]))
    files = {}
    for flag in ("--config", "--stores-file"):
        path = Path(args[flag])
        cm = cms[vols[mounts[str(path.parent)]]["configMap"]["name"]]
        files[flag] = cm
        assert path.name in cm["data"], (flag, path)
    monkeypatch.setenv("INFLUXDB_TOKEN", "x")
    app = yaml.safe_load(files["--config"]["data"]["app_config.yaml"])
    cfg = parse_app_config(app, "app_config.yaml", with_sections=False)
    headless = one(objs, "Service", "triton-headless")
    assert cfg.triton.url == f"dns:///triton-headless:{headless['spec']['ports'][0]['port']}"
    stores = yaml.safe_load(files["--stores-file"]["data"]["stores.yaml"])["stores"]
    for s in stores:  # the store files travel in the same ConfigMap
        assert s["config"] in files["--stores-file"]["data"] and s.get("streams_file", "stores.yaml") in \
            files["--stores-file"]["data"]
    assert {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]} == {"data"}


@pytest.mark.parametrize("name", APPS)
def test_secrets_by_reference_only(name):
    objs = render(name)
    assert not [o for o in objs if o["kind"] == "Secret"], "no Secret objects: create retail-vision-secrets yourself"
    refs = set()
    for w in (o for o in objs if o["kind"] in ("Deployment", "StatefulSet")):
        for c in pod_spec(w)["containers"]:
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "value" not in e, f"{w['metadata']['name']}: {e['name']} in plain text"
                    ref = e["valueFrom"]["secretKeyRef"]
                    refs.add((ref["name"], ref["key"]))
    assert refs and {n for n, _ in refs} == {SECRET} and {k for _, k in refs} <= SECRET_KEYS
    text = yaml.safe_dump_all(objs)
    assert not re.search(r"(?i)(token|password)\s*:\s*['\"]?[A-Za-z0-9+/_=-]{8,}", text.replace("token_env", ""))
    for cm in (o for o in objs if o["kind"] == "ConfigMap"):
        for key, body in cm.get("data", {}).items():
            if key.endswith((".yaml", ".yml")):
                # a secret in a mounted file is only ever a ${VAR} the container fills from a secretKeyRef
                for k, v in _leaves(yaml.safe_load(body)):
                    if re.search(r"(?i)token|password", k) and not k.endswith("_env"):  # *_env names a variable
                        assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", str(v)), (cm["metadata"]["name"], key, k, v)


@pytest.mark.parametrize("name", APPS)
def test_grafana_provisioned_from_configs_grafana(name):
    objs = render(name)
    dep = one(objs, "Deployment", "grafana")
    c = pod_spec(dep)["containers"][0]
    vols = {v["name"]: v["configMap"]["name"] for v in pod_spec(dep)["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    ds = named(objs, "ConfigMap", "grafana-datasources")
    assert vols[mounts["/etc/grafana/provisioning/datasources"]] == ds["metadata"]["name"]
    providers = named(objs, "ConfigMap", "grafana-dashboard-providers")
    assert vols[mounts["/etc/grafana/provisioning/dashboards"]] == providers["metadata"]["name"]
    provider_path = yaml.safe_load(providers["data"]["retail.yaml"])["providers"][0]["options"]["path"]
    dashboards = named(objs, "ConfigMap", "grafana-dashboards")
    assert vols[mounts[provider_path]] == dashboards["metadata"]["name"]
    on_disk = {p.name: p.read_text() for p in (REPO / "configs" / "grafana" / "dashboards").glob("*.json")}
    assert dashboards["data"] == on_disk  # every dashboard, unchanged
    source = ds["data"]["influxdb.yaml"]
    assert source == (REPO / "configs/grafana/provisioning/datasources/influxdb.yaml").read_text()
    env = env_of(c)
    for var in set(re.findall(r"\$\{(\w+)\}", source)):  # the datasource's variables all come from the pod
        assert var in env, var


def test_influxdb_is_external():
    base = one(render("base"), "Service", "influxdb")
    assert base["spec"]["type"] == "ExternalName" and base["spec"]["ports"][0]["port"] == 8086
    assert one(render("overlays/chain"), "Service", "influxdb")["spec"]["externalName"] == "influxdb.retail.internal"
    for name in ("base", "overlays/chain"):
        c = pod_spec(one(render(name), "StatefulSet", "clients"))["containers"][0]
        assert env_of(c)["RVA_INFLUXDB_URL"]["value"] == "http://influxdb:8086"
    cloud = render("overlays/influxdb-cloud")
    assert not [o for o in cloud if o["kind"] == "Service" and o["metadata"]["name"] == "influxdb"]
    c = pod_spec(one(cloud, "StatefulSet", "clients"))["containers"][0]
    g = pod_spec(one(cloud, "Deployment", "grafana"))["containers"][0]
    assert env_of(c)["RVA_INFLUXDB_URL"]["value"].startswith("https://")
    assert env_of(g)["INFLUXDB_URL"]["value"] == env_of(c)["RVA_INFLUXDB_URL"]["value"]
    assert env_of(c)["RVA_INFLUXDB_ORG"]["value"] == "retail-vision"


def test_chain_overlay_namespace_and_images():
    objs = render("overlays/chain")
    one(objs, "Namespace", "retail-vision")
    assert all(o["metadata"].get("namespace") == "retail-vision" for o in objs if o["kind"] != "Namespace")
    images = {c["image"] for o in objs if o["kind"] in ("Deployment", "StatefulSet") for c in pod_spec(o)["containers"]}
    assert "registry.example.com/retail-vision/clients:1.0.0" in images
    assert "registry.example.com/retail-vision/triton:24.10" in images
