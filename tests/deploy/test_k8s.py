"""k8s/: every overlay (alone and with every optional component) renders with the pinned kustomize, every
object validates strictly, and what the objects say matches the server and what ECK creates."""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient

from tasques.config import Config, load_config, split_host_port
from tasques.config_env import resolve_field
from tasques.server import build_server
from tasques.store.sqlite.store import SqliteStore
from tests.deploy import pods, render, schemas, tools
from tests.deploy.render import Object, one, pod_spec, selects
from tests.process import free_port

TARGETS = [*render.OVERLAYS, *(f"{o}+components" for o in render.OVERLAYS)]
Rendered = dict[str, list[Object]]
AiohttpClient = Callable[..., Any]


@pytest.fixture(scope="module")
def custom() -> schemas.CustomKinds:
    return schemas.CustomKinds([tools.eck_crds(), tools.servicemonitor_crd()])


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    out: Rendered = {}
    for overlay in render.OVERLAYS:
        out[overlay] = render.build(render.K8S / "overlays" / overlay)
        with tempfile.TemporaryDirectory() as tmp:
            out[f"{overlay}+components"] = render.build_with(overlay, render.COMPONENTS, Path(tmp))
    return out


def server(objects: list[Object]) -> tuple[Object, Object]:
    """The Tasques Deployment's pod spec and its server container."""
    pod = pod_spec(one(objects, "Deployment", "tasques"))
    return pod, pods.container(pod, "tasques")


def config_of(objects: list[Object], tmp_path: Path) -> Config:
    pod, c = server(objects)
    return pods.server_config(objects, pod, c, tmp_path)


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_strictly(rendered: Rendered, custom: schemas.CustomKinds, target: str) -> None:
    objects = rendered[target]
    problems = []
    for obj in objects:
        try:
            schemas.validate(obj, custom)
        except schemas.Invalid as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    assert {"Elasticsearch", "Kibana", "Job", "ServiceAccount"} <= kinds
    if target.endswith("+components"):
        assert {"ApmServer", "ServiceMonitor"} <= kinds


def _set(obj: Object, path: str, value: Any) -> Object:
    """A copy of `obj` with `value` at a dotted path (digits index lists)."""
    out = copy.deepcopy(obj)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    node[parts[-1]] = value
    return out


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", "spec.template.spec.containers.0.livenessProbe.httpGet.bogus"),
        ("Deployment", "spec.strategy.bogus"),
        ("Deployment", "metadata.bogus"),
        ("Elasticsearch", "spec.bogus"),
        ("Elasticsearch", "spec.nodeSets.0.bogus"),
        ("Elasticsearch", "spec.nodeSets.0.volumeClaimTemplates.0.spec.bogus"),
        # Open in the CRD (preserve-unknown-fields), decoded by ECK as core types: checked as those.
        ("Elasticsearch", "spec.nodeSets.0.podTemplate.spec.containers.0.bogus"),
        ("Elasticsearch", "metadata.bogus"),
        ("Kibana", "spec.elasticsearchRef.bogus"),
        ("ApmServer", "spec.bogus"),
        ("ServiceMonitor", "spec.endpoints.0.bogus"),
    ],
)
def test_an_unknown_field_is_an_error(rendered: Rendered, custom: schemas.CustomKinds, kind: str, path: str) -> None:
    bad = _set(one(rendered["prod+components"], kind), path, "x")
    with pytest.raises(schemas.Invalid, match="bogus"):
        schemas.validate(bad, custom)


def test_the_crd_schemas_alone_would_let_unknown_fields_through() -> None:
    """Why `strict` exists: the API server prunes unknown fields of a custom resource without a word."""
    crd = next(
        d for d in schemas.load_all(tools.eck_crds().read_text()) if d and d["spec"]["names"]["kind"] == "Kibana"
    )
    raw = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    kibana = {"apiVersion": "kibana.k8s.elastic.co/v1", "kind": "Kibana", "metadata": {"name": "k"}}
    kibana["spec"] = {"version": "9.2.4", "elasticsearchRef": {"name": "es", "bogus": 1}}
    jsonschema.Draft202012Validator(raw).validate(kibana)
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.Draft202012Validator(schemas.strict(raw)).validate(kibana)


def test_a_kind_with_no_schema_is_an_error(custom: schemas.CustomKinds) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    with pytest.raises(schemas.Invalid, match="neither a Kubernetes"):
        schemas.validate(unknown, custom)


@pytest.mark.parametrize("target", TARGETS)
def test_every_tasques_variable_is_a_setting_and_the_config_loads(
    rendered: Rendered, target: str, tmp_path: Path
) -> None:
    objects = rendered[target]
    for workload in (one(objects, "Deployment"), one(objects, "Job")):
        for c in pod_spec(workload)["containers"]:
            for name in pods.env(c):
                if name.startswith("TASQUES_"):
                    # load_config only warns about an unknown name (other tools share the prefix): be strict here.
                    assert resolve_field(Config, name.removeprefix("TASQUES_").lower().split("_")), name
                else:
                    assert name.startswith("ELASTIC_APM_"), f"{name}: neither a Tasques nor an APM agent setting"
    config = config_of(objects, tmp_path)
    load_config(tmp_path / "config.yaml", {})  # the ConfigMap's file loads on its own too
    assert config.store.kind == "elasticsearch"
    assert config.store.elasticsearch.user == "elastic"
    assert config.store.elasticsearch.password == pods.SECRET_PLACEHOLDER
    assert config.logging.format == "json"


def test_apm_agent_variables_are_the_agents_own(rendered: Rendered) -> None:
    from elasticapm.conf import Config as ApmAgentConfig

    known = {getattr(v, "env_key", None) for v in vars(ApmAgentConfig).values()}
    _, c = server(rendered["prod+components"])
    named = [name for name in pods.env(c) if name.startswith("ELASTIC_APM_")]
    assert named, "the apm component sets the agent's CA file"
    assert set(named) <= known


@pytest.mark.parametrize("target", TARGETS)
def test_the_container_port_is_the_bind_address_and_the_probes_use_it(
    rendered: Rendered, target: str, tmp_path: Path
) -> None:
    objects = rendered[target]
    _, c = server(objects)
    host, port = split_host_port(config_of(objects, tmp_path).server.bind_address)
    assert host == "0.0.0.0"
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", port), probe
    assert one(objects, "Service", "tasques")["spec"]["ports"][0]["targetPort"] in ("http", port)
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    # A probe must outlast the store ping /ready makes, or a slow Elasticsearch reads as a dead probe.
    ping = config_of(objects, tmp_path).store.ping_timeout.total_seconds()
    assert c["readinessProbe"]["timeoutSeconds"] > ping


async def test_the_probe_and_scrape_paths_answer_on_the_real_app(
    rendered: Rendered, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    objects = rendered["prod"]
    _, c = server(objects)
    config = config_of(objects, tmp_path)
    # The server as the manifests configure it, on an embedded store (no Elasticsearch is reachable here).
    client: TestClient[Any, Any] = await aiohttp_client(build_server(config, SqliteStore(str(tmp_path / "probe.db"))))
    template = one(objects, "Deployment")["spec"]["template"]
    paths = [c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    paths.append(template["metadata"]["annotations"]["prometheus.io/path"])
    for path in paths:
        resp = await client.get(path)
        assert resp.status == 200, f"GET {path}: {resp.status}"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(c["ports"][0]["containerPort"])


@pytest.mark.parametrize("target", TARGETS)
def test_names_match_what_eck_creates(rendered: Rendered, target: str) -> None:
    objects = rendered[target]
    secrets, services = pods.eck_created(objects)
    es_names = {o["metadata"]["name"] for o in render.of_kind(objects, "Elasticsearch")}
    for ref in ("Kibana", "ApmServer"):
        for obj in render.of_kind(objects, ref):
            assert obj["spec"]["elasticsearchRef"]["name"] in es_names
    for workload in (one(objects, "Deployment"), one(objects, "Job")):
        pod = pod_spec(workload)
        for source in pods.secret_refs(pod):
            assert source.name in secrets, f"{source.name}: ECK creates only {sorted(secrets)}"
        for c in pod["containers"]:
            for scheme, host, port in pods.urls(c):
                assert host in services, f"{host}: ECK creates only {sorted(services)}"
                assert (scheme, port) == ("https", services[host]), host
    pod, c = server(objects)
    es = next(iter(es_names))
    values = pods.env(c)
    assert values["TASQUES_STORE_ELASTICSEARCH_ADDRESSES"] == f"https://{es}-es-http:9200"
    password = next(v for v in c["env"] if v["name"] == "TASQUES_STORE_ELASTICSEARCH_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": f"{es}-es-elastic-user", "key": "elastic"}
    ca = pods.file_source(pod, c, values["TASQUES_STORE_ELASTICSEARCH_CA_CERTS"])
    assert ca == pods.Source("secret", f"{es}-es-http-certs-public", "ca.crt")
    if "TASQUES_APM_SERVER_URL" in values:
        apm = one(objects, "ApmServer")["metadata"]["name"]
        agent_ca = pods.file_source(pod, c, values["ELASTIC_APM_SERVER_CA_CERT_FILE"])
        assert agent_ca == pods.Source("secret", f"{apm}-apm-http-certs-public", "ca.crt")


@pytest.mark.parametrize("target", TARGETS)
def test_the_kibana_job_reads_eck_files(rendered: Rendered, target: str) -> None:
    objects = rendered[target]
    job = one(objects, "Job")
    pod = pod_spec(job)
    c = pods.container(pod, "import")
    args = c["args"]
    assert args[args.index("kibana") :][:2] == ["kibana", "import"]
    es = one(objects, "Elasticsearch")["metadata"]["name"]
    kb = one(objects, "Kibana")["metadata"]["name"]
    assert pods.option(args, "--url") == f"https://{kb}-kb-http:5601"
    assert pods.option(args, "--user") == "elastic"
    password = pods.option(args, "--password")
    assert password.startswith("@")
    assert pods.file_source(pod, c, password[1:]) == pods.Source("secret", f"{es}-es-elastic-user", "elastic")
    ca = pods.file_source(pod, c, pods.option(args, "--ca-certs"))
    assert ca == pods.Source("secret", f"{kb}-kb-http-certs-public", "ca.crt")
    assert job["spec"]["backoffLimit"] >= 5
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_the_kibana_job_command_runs(rendered: Rendered, tmp_path: Path) -> None:
    """The Job's own arguments, with its mounted files replaced by local ones and Kibana by a closed port, get
    as far as connecting: the CLI accepts them, reads the config, the password and the CA (exit 4: no answer)."""
    import certifi

    objects = rendered["prod"]
    pod = pod_spec(one(objects, "Job"))
    c = pods.container(pod, "import")
    local = {
        "config.yaml": pods.config_files(objects)[pods.file_source(pod, c, pods.CONFIG_PATH).name],
        "elastic": pods.SECRET_PLACEHOLDER,
        "ca.crt": Path(certifi.where()).read_text(),
    }
    args = []
    for arg in c["args"]:
        path = arg.removeprefix("@")
        if path.startswith("/"):
            source = pods.file_source(pod, c, path)
            copy_at = tmp_path / source.key
            copy_at.write_text(local[source.key])
            arg = arg.replace(path, str(copy_at))
        elif arg.startswith("https://"):
            arg = f"https://127.0.0.1:{free_port()}"
        args.append(arg)
    proc = subprocess.run(
        [sys.executable, "-m", "tasques.cli", *args, "--timeout", "5"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 4, proc.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_the_drain_fits_in_the_termination_grace(rendered: Rendered, target: str, tmp_path: Path) -> None:
    objects = rendered[target]
    pod, c = server(objects)
    grace = config_of(objects, tmp_path).server.shutdown_grace.total_seconds()
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > grace + pre_stop


@pytest.mark.parametrize(("overlay", "nodes", "replicas"), [("dev", 1, 0), ("prod", 3, 1)])
def test_elasticsearch_size_and_index_replicas(
    rendered: Rendered, overlay: str, nodes: int, replicas: int, tmp_path: Path
) -> None:
    objects = rendered[overlay]
    node_sets = one(objects, "Elasticsearch")["spec"]["nodeSets"]
    assert sum(n["count"] for n in node_sets) == nodes
    configured = config_of(objects, tmp_path).store.elasticsearch.replicas
    assert configured == replicas
    assert configured < nodes, "a replica is never assigned to its primary's node"
    if overlay == "prod":
        roles = {role for n in node_sets for role in n["config"]["node.roles"]}
        assert {"master", "data"} <= roles


@pytest.mark.parametrize("target", TARGETS)
def test_replicas_selectors_and_rollout(rendered: Rendered, target: str) -> None:
    objects = rendered[target]
    deployment = one(objects, "Deployment")
    labels = pods.labels_of(deployment["spec"]["template"])
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert selects(deployment["spec"]["selector"], labels)
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tasques"}
    assert 2 <= hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    assert selects(one(objects, "PodDisruptionBudget")["spec"]["selector"], labels)
    service = one(objects, "Service", "tasques")
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    job_labels = pods.labels_of(one(objects, "Job")["spec"]["template"])
    assert not selects({"matchLabels": service["spec"]["selector"]}, job_labels), "the Job is no server"
    for monitor in render.of_kind(objects, "ServiceMonitor"):
        assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert namespaces == {one(objects, "Namespace")["metadata"]["name"]}, "ECK's names resolve in one namespace"


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_locked_down(rendered: Rendered, target: str) -> None:
    objects = rendered[target]
    for workload in (one(objects, "Deployment"), one(objects, "Job")):
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "memory" in c["resources"]["limits"]
            assert c["resources"]["requests"]
            tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    sa = one(objects, "ServiceAccount", "tasques")
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_and_command_follow_the_contract(rendered: Rendered, target: str) -> None:
    version = tomllib.loads((render.REPO / "pyproject.toml").read_text())["project"]["version"]
    objects = rendered[target]
    _, c = server(objects)
    assert c["image"] == f"ghcr.io/tasques/tasques:{version}"
    assert pods.container(pod_spec(one(objects, "Job")), "import")["image"] == c["image"]
    assert c["args"] == ["--config", pods.CONFIG_PATH, "serve"]
    # The generated name carries a hash of config.yaml, so editing it rolls the pods.
    config_map = pods.file_source(*server(objects), pods.CONFIG_PATH).name
    assert config_map.startswith("tasques-config-")
