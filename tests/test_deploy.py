"""The deploy files cannot be exercised here (no systemd, no Docker engine, no Helm); check their structure.

* systemd units: they parse and run the pipeline they are named after.
* Compose (deploy/compose.yaml): only the review page is published, on loopback by default (plus the
  optional TLS proxy under a profile); backends sit on an internal network only; every image is pinned
  by digest; every service has a health check (one-shot jobs are marked so); secrets have no default.
  When Debian's `docker-compose` is installed (CI installs it), it validates the file too.
* Helm chart (deploy/helm/matcha): no Helm binary, so the templates are read as text and, with their
  Go-template actions stripped, as YAML: every `.Values` path exists, probes and resources on every
  container, ClusterIP Services only, NetworkPolicies that admit only Matcha's pods to the backends.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "systemd"
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
CHART = ROOT / "deploy" / "helm" / "matcha"

BACKENDS = ("postgres", "qdrant", "ollama")
MATCHA_SERVICES = ("review", "worker")
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "QDRANT_API_KEY", "MATCHA_DECISION_KEY")
PINNED = re.compile(r"^(?P<repo>[^@\s:]+(?::\d+)?(?:/[^@\s:]+)*):(?P<tag>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


# --- systemd -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.iterdir()))
def test_unit_files_parse(name: str) -> None:
    cfg = configparser.ConfigParser(strict=True, interpolation=None)
    cfg.read(DEPLOY / name)
    assert "Unit" in cfg
    if name == "matcha-worker.service":
        start = cfg["Service"]["ExecStart"]
        assert start.split()[0].endswith("/matcha") and " worker " in f"{start} "
        assert cfg["Service"]["NoNewPrivileges"] == "true" and cfg["Service"]["Restart"] == "on-failure"
    elif name.endswith(".service"):
        start = cfg["Service"]["ExecStart"]
        assert "matcha" in start and " run pipelines/%i.yaml" in start
    else:
        assert cfg["Timer"]["OnCalendar"]


# --- Compose -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def default_of(text: str) -> str:
    """``text`` with each ``${VAR:-default}`` replaced by its default (what Compose uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", text)


def networks_of(service: dict[str, Any]) -> list[str]:
    nets = service.get("networks", [])
    return list(nets) if isinstance(nets, (list, dict)) else []


def test_compose_publishes_only_the_review_page_on_loopback(compose: dict[str, Any]) -> None:
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published <= {"review", "caddy"}, f"only the review page (and the TLS proxy) may publish ports: {published}"
    assert "review" in published
    (review_port,) = compose["services"]["review"]["ports"]
    assert default_of(str(review_port)) == "127.0.0.1:8765:8765"
    assert str(review_port).startswith("${MATCHA_BIND:-127.0.0.1}:"), "binding elsewhere needs an explicit variable"
    caddy = compose["services"].get("caddy")
    if caddy is not None:  # the optional TLS front: only with `--profile tls`, and only HTTPS
        assert caddy.get("profiles") == ["tls"]
        assert [default_of(str(p)).rsplit(":", 2)[-2:] for p in caddy["ports"]] == [["443", "443"]]
        assert networks_of(caddy) == ["frontend"]


def test_compose_backends_are_on_the_internal_network_only(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    assert networks["backend"]["internal"] is True
    for name in BACKENDS:
        svc = compose["services"][name]
        assert not svc.get("ports") and not svc.get("network_mode")
        assert networks_of(svc) == ["backend"], f"{name} must sit on the internal network only"
    for name in MATCHA_SERVICES:
        assert sorted(networks_of(compose["services"][name])) == ["backend", "frontend"]
    for name in networks_of(compose["services"]["model-pull"]):  # it downloads; it reaches no backend
        assert not (networks.get(name) or {}).get("internal") and name != "backend"
    # whoever else is on the backend network is Matcha itself
    on_backend = {n for n, svc in compose["services"].items() if "backend" in networks_of(svc)}
    assert on_backend == {*BACKENDS, *MATCHA_SERVICES}


def test_compose_images_are_pinned_by_digest(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:  # Matcha's own image, built from deploy/Dockerfile
            assert ((COMPOSE_FILE.parent / svc["build"]["context"]).resolve() / svc["build"]["dockerfile"]).is_file()
            continue
        assert PINNED.match(svc["image"]), f"{name}: pin its image as name:tag@sha256:<64 hex>, not {svc['image']}"
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert bases and all(PINNED.match(b) for b in bases), bases


def test_compose_every_service_is_health_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if svc.get("restart") == "no":  # a one-shot job: others wait for it to complete instead
            waiting = [n for n, s in services.items() if (s.get("depends_on") or {}).get(name, {}).get("condition")
                       == "service_completed_successfully"]
            assert waiting, f"one-shot {name}: nothing waits for it"
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), (name, dep)


def test_compose_model_pull_is_one_shot_and_awaited(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pull = services["model-pull"]
    assert pull["restart"] == "no"
    assert "ollama pull" in "\n".join(pull["command"])
    assert pull["volumes"] == services["ollama"]["volumes"]
    for name in ("worker", "ollama"):
        assert services[name]["depends_on"]["model-pull"] == {"condition": "service_completed_successfully"}


def test_compose_secrets_are_required_and_never_defaulted(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"changeme|password\s*[:=]\s*[\"']?password", text, re.I)
    refs = re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", text)
    for name in REQUIRED_SECRETS:
        mods = [mod for ref, mod in refs if ref == name]
        assert mods and all(mod.startswith(":?") for mod in mods), f"{name} must be required with ${{{name}:?...}}"
    for ref, mod in refs:
        if re.search(r"PASSWORD|SECRET|_KEY$", ref):
            assert mod.startswith(":?"), f"${{{ref}{mod}}}: a secret never has a default"
    # every environment value that looks like a secret comes from a required variable, never a literal
    for name, svc in compose["services"].items():
        for var, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|API_KEY|DECISION_KEY", var):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), (name, var)


def test_compose_matcha_environment_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in MATCHA_SERVICES:
        env = services[name]["environment"]
        assert re.fullmatch(r"postgresql://matcha:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/matcha",
                            env["MATCHA_DATABASE_URL"])
        assert env["MATCHA_HOME"] == "/var/lib/matcha"
        assert env["OLLAMA_HOST"] == "http://ollama:11434"
        assert env["QDRANT_API_KEY"].startswith("${QDRANT_API_KEY:?")
        assert "matcha-home:/var/lib/matcha" in services[name]["volumes"]
        # project files are mounted read-only (bind mounts: a path, not a volume name)
        binds = [v for v in services[name]["volumes"] if v.startswith((".", "/", "$"))]
        assert binds and all(v.endswith(":ro") for v in binds), binds
    assert services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    assert "matcha serve --host 0.0.0.0 --port 8765" in services["review"]["command"]
    assert services["worker"]["command"].startswith("matcha worker")
    # named volumes only (no host folders) for state
    declared = set(compose["volumes"])
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, volume


def test_compose_containers_are_hardened(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert not svc.get("privileged"), name
        # only Caddy keeps one capability: its image's binary carries it as a file capability
        assert svc.get("cap_add", []) == (["NET_BIND_SERVICE"] if name == "caddy" else []), name
    for name in MATCHA_SERVICES:
        svc = compose["services"][name]
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
        assert not str(svc["user"]).startswith("0"), "Matcha runs as its own user"


def test_dockerfile_fetches_models_at_build_and_runs_unprivileged() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r'pip install "[^"]*\[postgres\]"', text)
    assert re.search(r"^RUN .*matcha models fetch", text, re.S | re.M), "models are fetched at build time"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root")), "the image runs as a non-root user"
    assert re.search(r'^CMD \["matcha", "serve", "--host", "0.0.0.0", "--port", "8765"\]', text, re.M)
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert rules[0] == "*", "the build context is an allow-list (never .venv/, .git/ or deploy/.env)"


@pytest.fixture
def compose_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for docker-compose with dummy secrets; deploy/.env is never read."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            **{name: "dummy-" + name.lower() for name in REQUIRED_SECRETS}}


def docker_compose(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose (Debian's package) is not installed here; CI installs it (.ci/run)")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run([exe, "--env-file", str(empty), "-f", str(COMPOSE_FILE), *args],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("profile", [[], ["--profile", "tls"]], ids=["default", "tls"])
def test_docker_compose_accepts_the_file(profile: list[str], compose_env: dict[str, str], tmp_path: Path) -> None:
    proc = docker_compose([*profile, "config", "-q"], compose_env, tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_docker_compose_refuses_to_start_without_a_secret(missing: str, compose_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    del compose_env[missing]
    proc = docker_compose(["config", "-q"], compose_env, tmp_path)
    assert proc.returncode != 0
    assert f"{missing} is not set" in proc.stdout + proc.stderr


def test_secrets_script_is_idempotent(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run = [shutil.which("sh") or "/bin/sh", str(ROOT / "deploy" / "secrets.sh"), str(env_file)]
    subprocess.run(run, check=True, capture_output=True, timeout=60)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    assert sorted(values) == sorted(REQUIRED_SECRETS)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in values.values())
    assert len(set(values.values())) == 3
    first = env_file.read_text()
    subprocess.run(run, check=True, capture_output=True, timeout=60)
    assert env_file.read_text() == first, "a second run must never replace a secret"
    env_file.write_text("\n".join(line for line in first.splitlines() if not line.startswith("QDRANT_API_KEY=")) + "\n")
    subprocess.run(run, check=True, capture_output=True, timeout=60)
    again = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    assert again["POSTGRES_PASSWORD"] == values["POSTGRES_PASSWORD"]
    assert again["QDRANT_API_KEY"] != values["QDRANT_API_KEY"]


# --- Helm chart ----------------------------------------------------------------------------------------

ACTION = re.compile(r"\{\{.*?\}\}")
ACTION_ONLY_LINE = re.compile(r"^\s*(\{\{.*?\}\}\s*)+$")


def strip_templating(text: str) -> str:
    """The template as plain YAML: lines made only of actions (if/range/end/include ... | nindent) are
    dropped, and inline actions become a placeholder scalar. Enough for structure, not for values."""
    lines = [line for line in text.splitlines() if not ACTION_ONLY_LINE.match(line)]
    return ACTION.sub("TEMPLATED", "\n".join(lines))


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def templates() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((CHART / "templates").iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def manifests(templates: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for name, text in templates.items():
        if name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(strip_templating(text)) if d]
    return docs


def kinds(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m.get("kind") == kind]


def component(selector: dict[str, Any] | None) -> str | None:
    return ((selector or {}).get("matchLabels") or {}).get("app.kubernetes.io/component")


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "matcha"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])


def test_chart_values_referenced_by_templates_exist(templates: dict[str, str], values: dict[str, Any]) -> None:
    paths = set()
    for text in templates.values():
        paths |= set(re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))
    assert paths
    for path in sorted(paths):
        node: Any = values
        for key in path.strip(".").split("."):
            assert isinstance(node, dict) and key in node, f".Values{path} is not in values.yaml"
            node = node[key]


def test_chart_workloads_have_probes_resources_and_run_unprivileged(manifests: list[dict[str, Any]],
                                                                     values: dict[str, Any]) -> None:
    workloads = kinds(manifests, "Deployment") + kinds(manifests, "StatefulSet")
    by_component = {component(w["spec"]["selector"]): w for w in workloads}
    assert set(by_component) == {"review", "worker", "ollama", "qdrant", "postgres"}
    assert by_component["postgres"]["kind"] == "StatefulSet"
    for name, workload in by_component.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            for key in ("readinessProbe", "livenessProbe", "resources", "securityContext"):
                assert key in container, f"{name}/{container['name']}: no {key}"
    for key in ("review", "worker", "ollama", "qdrant", "postgres", "modelPull"):
        res = values[key]["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), key
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for setting in ("allowPrivilegeEscalation: false", "readOnlyRootFilesystem: true", "drop: [ALL]"):
        assert setting in helpers


def test_chart_model_pull_job_is_a_hook(manifests: list[dict[str, Any]]) -> None:
    (job,) = kinds(manifests, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert 'ollama pull "$MODEL"' in job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "model-pull"


def test_chart_services_are_cluster_ip_only(manifests: list[dict[str, Any]], templates: dict[str, str],
                                           values: dict[str, Any]) -> None:
    services = kinds(manifests, "Service")
    assert services and all(s["spec"]["type"] == "ClusterIP" for s in services)
    everything = "\n".join(templates.values()) + (CHART / "values.yaml").read_text()
    assert "NodePort" not in everything and "LoadBalancer" not in everything


def test_chart_network_policies_admit_only_matcha_to_backends(manifests: list[dict[str, Any]]) -> None:
    policies = kinds(manifests, "NetworkPolicy")
    deny = [p for p in policies if component(p["spec"]["podSelector"]) is None]
    assert len(deny) == 1 and deny[0]["spec"]["policyTypes"] == ["Ingress"] and not deny[0]["spec"].get("ingress")
    allowed = {"postgres": {"review", "worker"}, "qdrant": {"review", "worker"},
               "ollama": {"review", "worker", "model-pull"}}
    for backend, clients in allowed.items():
        selecting = [p for p in policies if component(p["spec"]["podSelector"]) == backend]
        assert len(selecting) == 1, f"one policy for {backend}"
        for rule in selecting[0]["spec"]["ingress"]:
            assert rule["from"], f"{backend}: an empty `from` admits everyone"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{backend}: only Matcha's pods, not {peer}"
                assert component(peer["podSelector"]) in clients, f"{backend}: {peer}"


def test_chart_secrets_come_from_an_existing_secret(manifests: list[dict[str, Any]], templates: dict[str, str],
                                                    values: dict[str, Any]) -> None:
    assert not kinds(manifests, "Secret"), "the chart never creates a Secret"
    assert values["existingSecret"] == ""
    helpers = templates["_helpers.tpl"]
    assert re.search(r'define "matcha.secretName".*?required "[^"]+" \.Values\.existingSecret', helpers, re.S)
    text = "\n".join(templates.values())
    refs = re.findall(r"secretKeyRef: \{name: ([^,]+),", text)
    assert refs and all(ref == '{{ include "matcha.secretName" . }}' for ref in refs), refs
    assert "changeme" not in (CHART / "values.yaml").read_text().lower()

    def keys(node: Any) -> list[str]:
        """Every mapping key in ``node``, at any depth."""
        if not isinstance(node, dict):
            return []
        return [*node, *(k for child in node.values() for k in keys(child))]

    assert not [k for k in keys(values) if re.search(r"password|api_?key|token", k, re.I)], "no secret in values"


def test_chart_images_match_compose(values: dict[str, Any], compose: dict[str, Any]) -> None:
    def normal(repo: str) -> str:
        return re.sub(r"^(docker\.io/)?(library/)?", "", repo)

    for name in BACKENDS:
        image = values[name]["image"]
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"]), name
        m = PINNED.match(compose["services"][name]["image"])
        assert m and (normal(image["repository"]), image["tag"], image["digest"]) == (
            normal(m["repo"]), m["tag"], m["digest"]), f"{name}: the chart and compose.yaml pin different images"


def test_chart_home_volume_is_shared(manifests: list[dict[str, Any]], values: dict[str, Any]) -> None:
    assert values["home"]["accessMode"] == "ReadWriteMany"  # review and worker are separate pods
    claims = {m["metadata"]["name"] for m in kinds(manifests, "PersistentVolumeClaim")}
    assert claims  # names are templated: one document per claim in pvc.yaml
    for name in ("review", "worker"):
        (workload,) = [w for w in kinds(manifests, "Deployment") if component(w["spec"]["selector"]) == name]
        mounts = workload["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "home", "mountPath": "/var/lib/matcha"} in mounts
