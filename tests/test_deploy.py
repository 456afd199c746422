"""The Kubernetes manifests (deploy/k8s): every overlay renders with kubectl's Kustomize, validates
against the Kubernetes schemas of the oldest and newest versions we support (kubernetes-validate,
strict), passes checkov's static security checks with no failed check, and says what the service
does: probes on its routes, a grace period that covers the drain, the HPA's metric named as the
adapter's rule names it and as /metrics exposes it, the settings the service reads.

kubectl, kubernetes-validate and checkov come from ``.ci/run`` (the last two in a tools venv of
their own, ``deploy/k8s/tools.txt``); elsewhere a missing one skips, naming its install line."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from service.config import Settings
from service.server import GRACE_MARGIN_S
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
#: The Kubernetes versions the manifests are validated against: the oldest supported, the newest.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
#: Kinds from operators, not Kubernetes: kubernetes-validate has no schema for them, so
#: test_the_service_monitor_scrapes_the_metrics_port checks what they say.
CUSTOM_KINDS = {"ServiceMonitor"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        line = ("kubectl (the machine's, >= 1.27)" if name == "kubectl"
                else "pip install -r deploy/k8s/tools.txt (in a venv of its own)")
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: .ci/run installs {line}")
        pytest.skip(f"{name} not installed: {line}")
    return path


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory) -> tuple[str, list[dict]]:
    out = subprocess.run([_tool("kubectl"), "kustomize", str(K8S / "overlays" / request.param)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    path.write_text(out.stdout)
    return request.param, [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _one(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def _container(docs: list[dict]) -> dict:
    (container,) = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_every_overlay_validates_against_the_kubernetes_schemas(rendered, tmp_path):
    overlay, docs = rendered
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert {d["kind"] for d in docs} >= {"Namespace", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
                                         "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress", "ServiceMonitor"}
    for version in KUBERNETES_VERSIONS:
        out = subprocess.run([_tool("kubernetes-validate"), "--strict", "-k", version, str(path)],
                             capture_output=True, text=True, timeout=300)
        lines = (out.stdout + out.stderr).splitlines()
        passed = [line for line in lines if line.startswith("INFO") and " passed " in line]
        others = [line for line in lines if not line.startswith("INFO")]
        unvalidated = [line for line in others if re.search(r"Couldn't find schema for kind (\w+)", line)
                       and re.search(r"kind (\w+)", line)[1] in CUSTOM_KINDS]
        assert out.returncode == 0 and set(others) == set(unvalidated), "\n".join(others)
        assert len(passed) == len(docs) - len(CUSTOM_KINDS & {d["kind"] for d in docs}), lines


def test_every_overlay_passes_checkov_with_no_failed_check(rendered, tmp_path):
    """Every check runs and passes; a check the manifests skip is listed, each with its reason in
    an annotation (``checkov.io/skip``) beside what it skips."""
    overlay, docs = rendered
    (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(docs))
    out = subprocess.run([_tool("checkov"), "--directory", str(tmp_path), "--framework", "kubernetes",
                          "--output", "json", "--skip-download", "--compact"],
                         capture_output=True, text=True, timeout=600)
    report = json.loads(out.stdout) if out.stdout.strip().startswith(("{", "[")) else None
    assert report is not None, out.stdout[-3000:] + out.stderr[-3000:]
    report = report[0] if isinstance(report, list) else report
    summary = report.get("summary", {})
    failed = [(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    skipped = sorted({c["check_id"] for c in report.get("results", {}).get("skipped_checks", [])})
    print(f"\ncheckov on {overlay}: {summary.get('passed')} passed, {summary.get('failed')} failed, skipped {skipped}")
    assert failed == [] and summary.get("passed", 0) > 50, failed
    assert skipped == ["CKV_K8S_43"], "a new skip needs its reason in an annotation and here"


def test_the_probes_and_the_grace_period_match_the_service(rendered):
    overlay, docs = rendered
    spec = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["failureThreshold"] == 1, "out of rotation at the first 503"
    # the pod leaves the endpoints while preStop pauses, then drains; all before the kubelet's SIGKILL
    config = _one(docs, "ConfigMap")["data"]
    drain_s = float(config["EMOFACE_DRAIN_S"])
    pre_stop_s = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pre_stop_s + math.ceil(drain_s) + GRACE_MARGIN_S + 2 <= spec["terminationGracePeriodSeconds"]
    # startup: loading and warm-up (2.7 s on CPU, tests/perf/results/service.md) with room for a cold GPU
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_the_pods_run_as_an_admission_policy_expects(rendered):
    overlay, docs = rendered
    spec = _one(docs, "Deployment")["spec"]["template"]["spec"]
    security = _container(docs)["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] >= 10000
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    mounts = {m["mountPath"] for m in _container(docs)["volumeMounts"]}
    assert "/tmp" in mounts, "bodies over 1 MiB are spooled to /tmp: writable despite the read-only root"
    assert "env" not in _container(docs), "the API key comes as a file, not through the environment"
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["egress"] == [] and set(policy["policyTypes"]) == {"Ingress", "Egress"}


def test_the_gpu_overlay_asks_for_one_gpu_and_the_cpu_overlay_for_none(rendered):
    overlay, docs = rendered
    spec = _one(docs, "Deployment")["spec"]["template"]["spec"]
    limits = _container(docs)["resources"]["limits"]
    device = _one(docs, "ConfigMap")["data"]["EMOFACE_DEVICE"]
    if overlay == "gpu":
        assert limits["nvidia.com/gpu"] == 1 and device == "cuda"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert _container(docs)["image"].endswith(":cuda")
    else:
        assert "nvidia.com/gpu" not in limits and "tolerations" not in spec and device == "cpu"
        assert _container(docs)["image"].endswith(":cpu")


def test_the_configmap_sets_only_settings_the_service_reads(rendered):
    overlay, docs = rendered
    config = _one(docs, "ConfigMap")["data"]
    known = {f"EMOFACE_{name.upper()}" for name in Settings.model_fields} | {"EMOFACE_SECRETS_DIR"}
    assert set(config) <= known, set(config) - known
    Settings(**{k.removeprefix("EMOFACE_").lower(): v for k, v in config.items() if k != "EMOFACE_SECRETS_DIR"})
    secret = [v for v in _one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    (mount,) = [m for m in _container(docs)["volumeMounts"] if m["name"] == secret[0]["name"]]
    assert mount["mountPath"] == config["EMOFACE_SECRETS_DIR"]
    assert secret[0]["secret"]["items"] == [{"key": "api-key", "path": "emoface_api_key"}]


def test_the_service_monitor_scrapes_the_metrics_port(rendered):
    overlay, docs = rendered
    monitor, service = _one(docs, "ServiceMonitor"), _one(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    paths = {p["path"] for rule in _one(docs, "Ingress")["spec"]["rules"] for p in rule["http"]["paths"]}
    assert {"/metrics", "/health", "/ready"}.isdisjoint(paths) and "/ws/" in paths


def test_the_hpa_reads_the_metric_the_adapter_makes_from_the_gauges_metrics_exposes(rendered, client):
    overlay, docs = rendered
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "rules.yaml").read_text())["rules"]["custom"]
    (rule,) = rules
    metrics = _one(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    pods = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
    assert pods == [rule["name"]["as"]]
    assert [m["resource"]["name"] for m in metrics if m["type"] == "Resource"] == ["cpu"], "CPU is the fallback"
    series = set(re.findall(r"\b(emoface_\w+)\{", rule["seriesQuery"] + rule["metricsQuery"]))
    assert series == {"emoface_admitted_work", "emoface_admitted_work_capacity"}
    text = client.get("/metrics").text
    for name in series:
        assert f"# TYPE {name} gauge" in text, name


def test_the_api_key_can_come_from_a_file():
    """EMOFACE_SECRETS_DIR, as the Deployment mounts its Secret: the key is read from the file."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (open(os.path.join(folder, "emoface_api_key"), "w")).write("s3cret")
        env = {k: v for k, v in os.environ.items() if k != "EMOFACE_API_KEY"}
        out = subprocess.run([sys.executable, "-c", "from service.config import Settings; print(Settings().api_key)"],
                             env={**env, "EMOFACE_SECRETS_DIR": folder}, capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "s3cret", out.stderr
