"""deploy/: Compose, Kubernetes (Strimzi), Prometheus and Grafana files, checked offline.

Kubernetes' own kinds are validated by kubernetes-validate (the API's JSON schemas, bundled);
Strimzi's kinds against the CRDs of the Strimzi release they target, vendored in
tests/fixtures/strimzi-0.50.1 (from Maven Central, io.strimzi:api:0.50.1:tests); the Compose file
against the Compose Specification's JSON schema (tests/fixtures/compose-spec). Prometheus rules
and configuration go through promtool (Debian package prometheus; make test installs it).
Every metric a rule or a dashboard panel uses must be one the services export.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from schemas.topics import ALERT_ACTIONS, ALERTS, REGISTRY, SENSOR_EVENTS
from services.alerts.metrics import AlertsMetrics
from services.alerts.settings import AlertsSettings
from services.core.config import load_config
from services.core.kafka import KafkaSettings
from services.core.localkafka import KAFKA_VERSION
from services.core.runtime import register_runtime
from services.core.tokens import TokenSettings
from services.correlator.metrics import CorrelatorMetrics
from services.correlator.settings import CorrelatorSettings
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "lindero.json"
OPERATIONS = ROOT / "docs" / "operations.md"
FIXTURES = ROOT / "tests" / "fixtures"
STRIMZI_CRDS = FIXTURES / "strimzi-0.50.1"

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes the manifests target (Strimzi 0.50 needs 1.27+) and the newest schema known."""

COMPONENTS = {"ingest": 8081, "correlator": 8082, "alerts": 8083}
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "correlator": CorrelatorSettings,
    "alerts": AlertsSettings,
}

EXTERNAL_METRICS = {
    "up": "Prometheus (scrape health)",
    "kafka_consumergroup_lag": "Kafka Exporter (Strimzi's spec.kafkaExporter, Compose's kafka-exporter)",
}
"""Metrics the rules and the dashboard may use that the services do not export themselves."""


# -- helpers ------------------------------------------------------------------------------------


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text("utf-8"), Loader=_LOADER) if doc]


@functools.cache
def _k8s_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every resource of deploy/k8s, parsed once (tests that change one work on a copy)."""
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _documents(path)
    ]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_resources() if doc["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    return found


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lindero_deploy_generate", K8S / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _settings_env_names() -> set[str]:
    """Every environment variable a Lindero service reads (prefix + field, plus aliases)."""
    names = set()
    for cls in [*SETTINGS.values(), KafkaSettings, TokenSettings]:
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            names.add(f"{prefix}{field_name}".upper())
            choices = getattr(field.validation_alias, "choices", [])
            names.update(str(choice).upper() for choice in choices)
    return names


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (the API server would silently prune them)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_validators() -> dict[tuple[str, str], jsonschema.Validator]:
    validators = {}
    for path in sorted(STRIMZI_CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text("utf-8"), Loader=_LOADER)  # noqa: S506
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: make test installs it (apt-get install prometheus)")
    return found


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_match_the_api_schemas(version: str) -> None:
    """Every built-in Kubernetes resource in deploy/k8s validates strictly against the API schema."""
    checked = 0
    for filename, doc in _k8s_resources():
        if doc["apiVersion"].startswith("kafka.strimzi.io/"):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{filename}: {doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
        checked += 1
    assert checked >= 20


def test_strimzi_kinds_match_the_vendored_crds() -> None:
    """Kafka, KafkaNodePool, KafkaTopic, KafkaUser match Strimzi 0.50.1's CRDs; unknown fields refused."""
    validators = _crd_validators()
    kinds = set()
    for filename, doc in _k8s_resources():
        if not doc["apiVersion"].startswith("kafka.strimzi.io/"):
            continue
        validator = validators.get((doc["apiVersion"], doc["kind"]))
        assert validator is not None, f"{filename}: no CRD for {doc['apiVersion']} {doc['kind']}"
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{filename}: {doc['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors
        )
        kinds.add(doc["kind"])
        if doc["kind"] != "Kafka":
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "lindero"
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


def test_the_crd_check_catches_a_misspelt_field() -> None:
    """A typo in a Strimzi resource fails the CRD check instead of being pruned silently."""
    validators = _crd_validators()
    kafka = copy.deepcopy(_named("Kafka", "lindero"))
    kafka["spec"]["kafka"]["listners"] = kafka["spec"]["kafka"].pop("listeners")
    assert list(validators[("kafka.strimzi.io/v1", "Kafka")].iter_errors(kafka))


def test_kafka_cluster_is_kraft_with_three_brokers() -> None:
    """Strimzi runs the pinned Kafka in KRaft mode: 3 controllers, 3 brokers, RF 3, min ISR 2."""
    kafka = _named("Kafka", "lindero")["spec"]["kafka"]
    assert kafka["version"] == KAFKA_VERSION
    assert kafka["config"]["default.replication.factor"] == 3
    assert kafka["config"]["min.insync.replicas"] == 2
    assert kafka["config"]["transaction.state.log.replication.factor"] == 3
    assert kafka["config"]["transaction.state.log.min.isr"] == 2
    assert kafka["config"]["auto.create.topics.enable"] is False
    (listener,) = kafka["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    pools = {pool["metadata"]["name"]: pool["spec"] for pool in _of_kind("KafkaNodePool")}
    assert sorted(role for pool in pools.values() for role in pool["roles"]) == ["broker", "controller"]
    assert all(pool["replicas"] == 3 for pool in pools.values())


def test_topics_file_is_fresh() -> None:
    """deploy/k8s/topics.yaml and config.yaml are what generate.py writes from the registry and config."""
    generator = _generator()
    for path, content in generator.render(ROOT / "config" / "demo.yaml").items():
        assert path.read_text("utf-8") == content, f"{path.name} is stale: run deploy/k8s/generate.py"


def test_topics_follow_the_registry() -> None:
    """Every registry topic is a KafkaTopic with its name, cleanup policy, retention and configs."""
    topics = {doc["spec"]["topicName"]: doc["spec"] for doc in _of_kind("KafkaTopic")}
    assert list(topics) == [topic.name for topic in REGISTRY]
    for topic in REGISTRY:
        spec = topics[topic.name]
        assert spec["config"]["cleanup.policy"] == topic.cleanup
        if topic.retention_ms is None:
            assert "retention.ms" not in spec["config"]
        else:
            assert spec["config"]["retention.ms"] == str(topic.retention_ms)
        for key, value in topic.configs:
            assert spec["config"][key] == value
        assert spec["replicas"] == 3
        assert int(spec["config"]["min.insync.replicas"]) == 2
    # The lifecycle reads alerts and alert.actions co-partitioned.
    assert topics[ALERTS.name]["partitions"] == topics[ALERT_ACTIONS.name]["partitions"]


def test_config_map_loads_as_the_deployments_mount_it(tmp_path: Path) -> None:
    """The ConfigMap, laid out as each Deployment mounts it, is a valid configuration with its geography."""
    data = _named("ConfigMap", "lindero-config")["data"]
    for deployment in _of_kind("Deployment"):
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        root = tmp_path / deployment["metadata"]["name"] / mount["mountPath"].lstrip("/")
        for item in volumes["config"]["configMap"]["items"]:
            (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / item["path"]).write_text(data[item["key"]], "utf-8")
        config_path = _env(container)["LINDERO_CONFIG"]["value"]
        assert config_path.startswith(mount["mountPath"] + "/")
        config = load_config(root / Path(config_path).relative_to(mount["mountPath"]))
        assert config.geography_path is not None
        assert config.geography_path.is_file()


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_is_hardened_and_probed(component: str) -> None:
    """Each Deployment runs non-root on a read-only root fs, probes /healthz and /readyz, sets resources."""
    deployment = _named("Deployment", f"lindero-{component}")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = COMPONENTS[component]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["args"] == [component]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The restricted Pod Security Standard allows only these volume types.
    assert all({"name"} < set(v) <= {"name", "configMap", "secret", "emptyDir"} for v in pod["volumes"])


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_environment_is_real_settings(component: str) -> None:
    """Every LINDERO_* variable a Deployment sets is a real setting; secrets come from Secrets."""
    known = _settings_env_names()
    (container,) = _named("Deployment", f"lindero-{component}")["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert set(env) <= known, set(env) - known
    assert env[f"LINDERO_{component.upper()}_HOST"]["value"] == "0.0.0.0"  # noqa: S104
    assert env[f"LINDERO_{component.upper()}_CREATE_TOPICS"]["value"] == "false"
    assert env["LINDERO_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    user = env["LINDERO_KAFKA_SASL_USERNAME"]["value"]
    assert env["LINDERO_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": user,
        "key": "password",
    }
    _named("KafkaUser", user)
    for name in ("LINDERO_KAFKA_SASL_PASSWORD", "LINDERO_AUTH_SECRET"):
        if name in env:
            assert "value" not in env[name], f"{name} must come from a Secret"
    if component == "alerts":
        assert env["LINDERO_AUTH_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "lindero-auth",
            "key": "secret",
        }


def test_no_secret_is_committed() -> None:
    """deploy/k8s holds no Secret: the auth secret and passwords are created in the cluster."""
    assert not _of_kind("Secret")


def test_services_autoscalers_and_budgets_select_their_pods() -> None:
    """Each Deployment has a Service, a CPU HPA and a PDB; the correlator's HPA stops at the partitions."""
    partitions = next(
        doc["spec"]["partitions"]
        for doc in _of_kind("KafkaTopic")
        if doc["spec"]["topicName"] == SENSOR_EVENTS.name
    )
    for component, port in COMPONENTS.items():
        name = f"lindero-{component}"
        pod_labels = _named("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        service = _named("Service", name)["spec"]
        assert service["selector"].items() <= pod_labels.items()
        assert service["ports"][0]["port"] == port
        pdb = _named("PodDisruptionBudget", name)["spec"]
        assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
        hpa = _named("HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
        assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
        if component == "correlator":
            assert hpa["maxReplicas"] <= partitions


def test_kafka_users_match_the_services() -> None:
    """ACLs name registry topics and the services' own consumer groups and transactional-id prefixes."""
    topic_names = {topic.name for topic in REGISTRY}
    groups = {
        "lindero-correlator": CorrelatorSettings.model_fields["group_id"].default,
        "lindero-alerts": AlertsSettings.model_fields["lifecycle_group"].default,
    }
    for user in _of_kind("KafkaUser"):
        acls = user["spec"]["authorization"]["acls"]
        for acl in acls:
            if acl["resource"]["type"] == "topic":
                assert acl["resource"]["name"] in topic_names
        name = user["metadata"]["name"]
        if name in groups:
            group = groups[name]
            assert any(
                a["resource"] == {"type": "group", "name": group, "patternType": "literal"} for a in acls
            )
            # services/core/processor.py: transactional.id = f"{group_id}.{partition task}"
            assert any(
                a["resource"] == {"type": "transactionalId", "name": f"{group}.", "patternType": "prefix"}
                for a in acls
            )


def _policies_for(component: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "lindero", "app.kubernetes.io/component": component}
    return [
        policy["spec"]
        for policy in _of_kind("NetworkPolicy")
        if policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]


def test_network_policies() -> None:
    """Default deny; ingest from gateways, alerts from centres, metrics by Prometheus; egress Kafka + DNS."""
    for component, port in COMPONENTS.items():
        policies = _policies_for(component)
        assert any(p["policyTypes"] == ["Ingress", "Egress"] and not p.get("ingress") for p in policies)
        ingress_ports = {
            (port_rule["port"], source.get("ipBlock", {}).get("cidr") or json.dumps(source, sort_keys=True))
            for p in policies
            for rule in p.get("ingress", [])
            for source in rule["from"]
            for port_rule in rule["ports"]
        }
        assert {port if p == "http" else p for p, _ in ingress_ports} == {port}, component
        egress = [rule for p in policies for rule in p.get("egress", [])]
        destinations = [peer for rule in egress for peer in rule["to"]]
        assert {"strimzi.io/cluster": "lindero", "strimzi.io/broker-role": "true"} in [
            peer.get("podSelector", {}).get("matchLabels") for peer in destinations
        ]
        egress_ports = {r["port"] for rule in egress for r in rule["ports"]}
        assert egress_ports == ({9093, 53, 443} if component == "alerts" else {9093, 53}), component
    cidrs = {
        component: {
            source["ipBlock"]["cidr"]
            for p in _policies_for(component)
            for rule in p.get("ingress", [])
            for source in rule["from"]
            if "ipBlock" in source
        }
        for component in COMPONENTS
    }
    assert cidrs == {"ingest": {"192.0.2.0/24"}, "correlator": set(), "alerts": {"198.51.100.0/24"}}


def test_kustomization_lists_every_manifest() -> None:
    """kubectl apply -k deploy/k8s applies every manifest file of the folder."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


# -- Compose ------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    """compose.yaml validates against the Compose Specification's JSON schema (unknown keys refused)."""
    schema = json.loads((FIXTURES / "compose-spec" / "compose-spec.json").read_text("utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = list(validator.iter_errors(_compose()))
    assert not errors, "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    broken = _compose()
    broken["services"]["ingest"]["helthcheck"] = broken["services"]["ingest"].pop("healthcheck")
    assert list(validator.iter_errors(broken))


def test_compose_kafka_is_a_three_node_kraft_cluster() -> None:
    """Three apache/kafka brokers of the pinned version, KRaft voters, one cluster id, RF 3 and min ISR 2."""
    services = _compose()["services"]
    brokers = {
        name: svc for name, svc in services.items() if name.startswith("kafka-") and name[6:].isdigit()
    }
    assert len(brokers) == 3
    ids, cluster_ids = set(), set()
    for name, service in brokers.items():
        env = service["environment"]
        assert service["image"] == f"apache/kafka:{KAFKA_VERSION}"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        voters = {voter.split("@")[1] for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
        assert voters == {f"{broker}:9093" for broker in brokers}
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert f"{env['KAFKA_NODE_ID']}@{name}:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert service["volumes"] == [f"{name}:/var/lib/kafka/data"]
        ids.add(env["KAFKA_NODE_ID"])
        cluster_ids.add(env["CLUSTER_ID"])
    assert len(ids) == 3
    (cluster_id,) = cluster_ids
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a UUID, as kafka-storage format wants


@pytest.mark.parametrize("component", COMPONENTS)
def test_compose_services(component: str) -> None:
    """Each service: the image from deploy/Dockerfile, its command, a /readyz healthcheck, real settings."""
    compose = _compose()
    service = compose["services"][component]
    port = COMPONENTS[component]
    assert service["build"] == {"context": "../..", "dockerfile": "deploy/Dockerfile"}
    assert service["command"] == [component]
    assert service["read_only"] is True
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
    env = service["environment"]
    known = _settings_env_names()
    for name in env:
        assert name in known or (name.endswith("_FILE") and name.removesuffix("_FILE") in known), name
    assert env[f"LINDERO_{component.upper()}_HOST"] == "0.0.0.0"  # noqa: S104
    assert env["LINDERO_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert env["LINDERO_KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["LINDERO_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert service["depends_on"] == {"topics": {"condition": "service_completed_successfully"}}
    assert "LINDERO_AUTH_SECRET" not in env
    if component == "alerts":
        assert env["LINDERO_AUTH_SECRET_FILE"] == "/run/secrets/auth_secret"
        assert service["secrets"] == ["auth_secret"]


def test_compose_secrets_and_mounts_exist_or_are_ignored() -> None:
    """Bind mounts point at files of the repository; secret files are git-ignored, never committed."""
    compose = _compose()
    base = COMPOSE.parent
    ignored = (base / ".gitignore").read_text("utf-8").split()
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "secrets/" in ignored
    tracked = _run("git", "ls-files", str(base), cwd=ROOT).stdout.split()
    assert not [path for path in tracked if "/secrets/" in path]
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("$"):
                source = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", source)
            if source.startswith("."):
                assert (base / source).exists(), f"{name}: {source}"
    assert (base / "../../config/demo.yaml").is_file()
    grafana = compose["services"]["grafana"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/lindero.yml").read_text("utf-8"))
    assert f"../grafana:{provider['providers'][0]['options']['path']}:ro" in grafana["volumes"]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text("utf-8")
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


# -- the image ----------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile() -> None:
    """Pinned install, non-root user, entry point `lindero`; COPY sources exist and pass the ignore file."""
    instructions = _dockerfile()
    runs = [arg for op, arg in instructions if op == "RUN"]
    assert any("pip install -c constraints.txt ." in run for run in runs)
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    (user,) = [arg for op, arg in final_stage if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    assert [json.loads(arg) for op, arg in final_stage if op == "ENTRYPOINT"] == [["lindero-entrypoint"]]
    assert 'exec lindero "$@"' in (DEPLOY / "docker-entrypoint.sh").read_text("utf-8")
    allowed = [
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text("utf-8").splitlines()
        if line.startswith("!")
    ]
    for op, arg in instructions:
        if op != "COPY" or arg.startswith("--from"):
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert (ROOT / source).exists() or source.startswith("web/"), source
            assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), source


def test_entrypoint_reads_secret_files(tmp_path: Path) -> None:
    """LINDERO_X_FILE becomes LINDERO_X (the file's content) before `lindero` runs; a bad file stops it."""
    stub = tmp_path / "bin" / "lindero"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "args=$*"\nenv | grep ^LINDERO_ | sort\n')
    stub.chmod(0o755)
    secret = tmp_path / "auth_secret"
    secret.write_text("s3cret value\n")
    environment = {
        "PATH": f"{stub.parent}:/usr/bin:/bin",
        "LINDERO_AUTH_SECRET_FILE": str(secret),
        "LINDERO_KAFKA_SSL_CAFILE": "/etc/ca.crt",
    }
    entrypoint = str(DEPLOY / "docker-entrypoint.sh")
    result = subprocess.run(
        ["/bin/sh", entrypoint, "alerts"], env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "args=alerts",
        "LINDERO_AUTH_SECRET=s3cret value",
        "LINDERO_KAFKA_SSL_CAFILE=/etc/ca.crt",
    ]
    environment["LINDERO_AUTH_SECRET_FILE"] = str(tmp_path / "missing")
    result = subprocess.run(
        ["/bin/sh", entrypoint, "alerts"], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "cannot be read" in result.stderr


# -- Prometheus and Grafana ---------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    """promtool check rules accepts rules.yml."""
    result = _run(_promtool(), "check", "rules", str(PROMETHEUS / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    """promtool test rules: silent correlator, 503s, lags and webhook failures fire when they should."""
    result = _run(_promtool(), "test", "rules", "rules.test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_scrape_configurations(tmp_path: Path) -> None:
    """Both Prometheus configurations pass promtool check config (Kubernetes discovery by structure)."""
    promtool = _promtool()
    result = _run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # Debian's promtool is built without Kubernetes service discovery: check the rest of the
    # file with a static target in its place, and the discovery blocks by hand.
    config = yaml.safe_load((PROMETHEUS / "prometheus-k8s.yml").read_text("utf-8"))
    for job in config["scrape_configs"]:
        (discovery,) = job.pop("kubernetes_sd_configs")
        assert discovery == {"role": "pod", "namespaces": {"names": ["lindero"]}}
        job["static_configs"] = [{"targets": ["placeholder:1"]}]
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
    result = _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_scrape_config_matches_the_pods() -> None:
    """The Kubernetes scrape job keeps the pods the Deployments label and annotate; jobs match the rules."""
    (job,) = [
        j
        for j in yaml.safe_load((PROMETHEUS / "prometheus-k8s.yml").read_text("utf-8"))["scrape_configs"]
        if j["job_name"] == "lindero"
    ]
    relabel = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    for component in COMPONENTS:
        template = _named("Deployment", f"lindero-{component}")["spec"]["template"]["metadata"]
        part_of = relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_part_of",)]
        assert re.fullmatch(part_of["regex"], template["labels"]["app.kubernetes.io/part-of"])
        scrape = relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
        assert re.fullmatch(scrape["regex"], template["annotations"]["prometheus.io/scrape"])
        address = relabel[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
        port = template["annotations"]["prometheus.io/port"]
        match = re.fullmatch(address["regex"], f"10.1.2.3:{port};{port}")
        assert match is not None
        assert match.expand(address["replacement"].replace("$", "\\")) == f"10.1.2.3:{port}"
        job_rule = relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)]
        assert job_rule["replacement"].replace("$1", template["labels"]["app.kubernetes.io/component"]) == (
            f"lindero-{component}"
        )
    compose_jobs = {
        j["job_name"]
        for j in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text("utf-8"))["scrape_configs"]
    }
    assert compose_jobs == {f"lindero-{c}" for c in COMPONENTS} | {"kafka-exporter"}


def _exported_metrics() -> set[str]:
    """Sample names the three services expose (counters with _total, histograms with _bucket/_sum/_count)."""
    registry = CollectorRegistry()
    IngestMetrics(registry)
    CorrelatorMetrics(registry)
    AlertsMetrics(registry)
    register_runtime(registry)
    names = set()
    for family in registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan",
}  # fmt: skip


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, grouping labels, ranges and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_the_metric_name_extraction() -> None:
    """The PromQL scan finds metric names and nothing else."""
    expr = (
        'sum by (le, topic) (rate(lindero_x_bucket{code=~"5..",a="b"}[5m])) / on () '
        "(sum(up) or on () vector(0)) > 0.5 and absent(lindero_y_total)"
    )
    assert _metric_names(expr) == {"lindero_x_bucket", "up", "lindero_y_total"}


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    """Every metric in rules.yml and lindero.json is exported by a service (or an allowed exporter)."""
    exported = _exported_metrics()
    assert {
        "lindero_ingest_events_total",
        "lindero_correlator_step_seconds_bucket",
        "lindero_alerts_clients",
    } <= (exported)
    allowed = exported | set(EXTERNAL_METRICS)
    used: dict[str, set[str]] = {}
    for rule in _rules():
        used[f"rule {rule['alert']}"] = _metric_names(rule["expr"])
    for title, expr in _dashboard_exprs():
        used.setdefault(f"panel {title}", set()).update(_metric_names(expr))
    unknown = {where: names - allowed for where, names in used.items() if names - allowed}
    assert not unknown
    assert all(used.values())
    every = set().union(*used.values())
    assert len(every & exported) >= 30


def test_every_rule_says_what_and_where_to_look() -> None:
    """Each alert has a severity, summary, description and a runbook section in docs/operations.md."""
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text("utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md"
        assert anchor in headings, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def test_dashboard() -> None:
    """The dashboard parses, every panel queries the datasource variable, and no two panels overlap."""
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["uid"] == "lindero-overview"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert pos["x"] + pos["w"] <= 24
        assert not cells & area, panel["title"]
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


# -- docs/operations.md -------------------------------------------------------------------------


def test_operations_doc_states_the_registry_retention() -> None:
    """docs/operations.md lists every topic with its cleanup policy and retention as the registry has them."""
    text = OPERATIONS.read_text("utf-8")
    for topic in REGISTRY:
        retention = "infinite" if topic.retention_ms is None else f"{topic.retention_ms // 86_400_000} days"
        row = re.search(rf"^\| `{re.escape(topic.name)}` \|.*$", text, re.MULTILINE)
        assert row is not None, topic.name
        assert f"| {topic.cleanup} |" in row.group(), row.group()
        assert f"| {retention} |" in row.group(), row.group()
