"""Cross-file consistency checks of deploy/, run by deploy/check.

The schema checks (yamllint, kubernetes-validate, the compose spec, hadolint)
see one file at a time; this sees them together, with the workspace:

- every environment variable given to a Tessera binary is one that binary
  reads (its `env = "..."` / `env::var("...")` names), or an expected extra
  (RUST_LOG, TESSERA_METRICS_LISTEN, OTEL_*);
- the image builds every binary the manifests run, from every workspace
  member, with a toolchain at least the workspace's rust-version;
- image tags and the migration Job's name follow the workspace version;
- compose: the expected services, start order, required secrets, no literal
  secret, verifiers without database credentials following the issuer;
- the collector's pipelines name only defined components;
- Kubernetes: probes (gRPC, or TCP where the port serves TLS), ports,
  security contexts, resources, selectors, references to ConfigMaps and
  Secrets (env and volumes), files named in the environment that a volume
  provides, the feed's topology (issuers -> relays -> verifiers over TLS,
  no verifier with a database), kustomization completeness.

Usage: python3 deploy/check_consistency.py REPO_ROOT (needs PyYAML).
Prints one line per finding and exits 1 if there is any error.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"

BINARIES = ("tessera-issuer", "tessera-verifier", "tessera-migration", "tessera")
SERVICES = {"postgres", "migrate", "issuer", "verifier-1", "verifier-2", "otel-collector"}
# Read by the services by design though perhaps not (yet) in their source:
# logging, metrics and the standard OpenTelemetry variables.
EXTRA_VARS = {"RUST_LOG", "TESSERA_METRICS_LISTEN"}
# Not given to the binaries as settings: inputs of $(VAR) expansion.
HELPER_VARS = {"POD_NAME", "POD_NAMESPACE"}
GRPC_PORT = {"tessera-issuer": 50051, "tessera-verifier": 50052}
LISTEN_VAR = {"tessera-issuer": "TESSERA_ISSUER_LISTEN", "tessera-verifier": "TESSERA_VERIFIER_LISTEN"}
METRICS_PORT = 9464
SECRET_WORDS = ("KEK", "PASSWORD", "SECRET", "TOKEN")

errors: list[str] = []
notes: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def rel(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


def load_all(path: pathlib.Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --- the workspace -----------------------------------------------------------

cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
VERSION = cargo["workspace"]["package"]["version"]
RUST_VERSION = cargo["workspace"]["package"].get("rust-version", "0")
MEMBERS = cargo["workspace"]["members"]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


bins_in_workspace: set[str] = set()
for member in MEMBERS:
    manifest = ROOT / member / "Cargo.toml"
    if not manifest.is_file():
        error("Cargo.toml", f"workspace member {member} has no Cargo.toml")
        continue
    for target in tomllib.loads(manifest.read_text()).get("bin", []):
        bins_in_workspace.add(target["name"])
for binary in BINARIES:
    if binary not in bins_in_workspace:
        error("Cargo.toml", f"no workspace member builds the binary {binary}")


def vars_read_under(directory: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for source in directory.rglob("*.rs"):
        text = source.read_text()
        names.update(re.findall(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"', text))
        names.update(re.findall(r'env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"', text))
    return names


VARS = {
    "tessera-issuer": vars_read_under(ROOT / "crates/issuer/src"),
    "tessera-verifier": vars_read_under(ROOT / "crates/verifier/src"),
    "tessera-migration": vars_read_under(ROOT / "migrations/src"),
    "tessera": vars_read_under(ROOT / "crates/cli/src"),
}
for binary in ("tessera-issuer", "tessera-verifier", "tessera-migration"):
    if not VARS[binary]:
        error(binary, "found no environment variable names in its source; has it moved?")

everything_read = vars_read_under(ROOT / "crates") | VARS["tessera-migration"]
if "TESSERA_METRICS_LISTEN" not in everything_read:
    notes.append("TESSERA_METRICS_LISTEN is set by deploy/ but read nowhere under crates/ yet")
if not any(name.startswith("OTEL_") for name in everything_read) and not any(
    "opentelemetry" in p.read_text() for p in (ROOT / "crates").glob("*/Cargo.toml")
):
    notes.append("no crate depends on opentelemetry yet: OTEL_* variables are set by deploy/ but not honoured")


def check_env_names(where: str, binary: str, names: list[str]) -> None:
    known = VARS.get(binary, set()) | EXTRA_VARS | HELPER_VARS
    for name in names:
        if name.startswith("OTEL_"):
            continue
        if name not in known:
            error(where, f"{name} is not read by {binary}")


# --- the Dockerfile ----------------------------------------------------------

dockerfile = DEPLOY / "Dockerfile"
text = dockerfile.read_text()
joined = re.sub(r"\\\n", " ", text)
build_lines = [line for line in joined.splitlines() if "cargo build" in line]
if not build_lines:
    error(rel(dockerfile), "no `cargo build` step")
else:
    build = build_lines[0]
    for flag in ("--release", "--locked"):
        if flag not in build:
            error(rel(dockerfile), f"cargo build without {flag}")
    built = set(re.findall(r"--bin\s+(\S+)", build))
    for binary in BINARIES:
        if binary not in built:
            error(rel(dockerfile), f"does not build {binary}")
        if f"target/release/{binary}" not in joined:
            error(rel(dockerfile), f"does not copy {binary} out of the build")

copied: set[str] = set()
for line in joined.splitlines():
    words = line.split()
    if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
        copied.update(w.rstrip("/").removeprefix("./") for w in words[1:-1] if not w.startswith("--"))
for needed in ["Cargo.toml", "Cargo.lock", *MEMBERS]:
    top = needed.split("/")[0]
    if top not in copied:
        error(rel(dockerfile), f"the build stage does not COPY {top} (needed for {needed})")

ignore = DEPLOY / "Dockerfile.dockerignore"
if ignore.is_file():
    ignore_lines = [l.strip() for l in ignore.read_text().splitlines()]
    if "*" in ignore_lines or "**" in ignore_lines:
        reincluded = {l[1:].rstrip("/") for l in ignore_lines if l.startswith("!")}
        for top in sorted(copied):
            if top not in reincluded:
                error(rel(ignore), f"{top} is copied by the Dockerfile but left out of the context")
else:
    error(rel(ignore), "missing")

arg = re.search(r"^ARG RUST_VERSION=(\S+)", text, re.M)
if not arg:
    error(rel(dockerfile), "no ARG RUST_VERSION")
elif version_tuple(arg.group(1)) < version_tuple(RUST_VERSION)[: len(version_tuple(arg.group(1)))]:
    error(rel(dockerfile), f"Rust {arg.group(1)} is older than the workspace's rust-version {RUST_VERSION}")
users = re.findall(r"^USER\s+(\S+)", text, re.M)
if not users or users[-1].split(":")[0] in ("0", "root"):
    error(rel(dockerfile), "the final stage must run as a non-root USER")
label_version = re.search(r"^ARG VERSION=(\S+)", text, re.M)
if not label_version or label_version.group(1) != VERSION:
    error(rel(dockerfile), f"ARG VERSION must be the workspace version {VERSION}")
if not re.search(r"^ENTRYPOINT\s+\[", text, re.M):
    error(rel(dockerfile), "no exec-form ENTRYPOINT")


# --- compose ------------------------------------------------------------------

compose_path = DEPLOY / "compose.yaml"
compose = yaml.safe_load(compose_path.read_text())
where = rel(compose_path)
services = compose.get("services", {})
if set(services) != SERVICES:
    error(where, f"services are {sorted(services)}, expected {sorted(SERVICES)}")


def binary_of(command) -> str | None:
    if isinstance(command, str):
        command = command.split()
    if not command:
        return None
    return pathlib.PurePosixPath(command[0]).name


def env_map(service: dict) -> dict:
    env = service.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


for name, service in services.items():
    here = f"{where} services.{name}"
    for dep, spec in (service.get("depends_on") or {}).items():
        if dep not in services:
            error(here, f"depends on the unknown service {dep}")
        elif isinstance(spec, dict) and spec.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
            error(here, f"waits for {dep} to be healthy, which has no healthcheck")
    binary = binary_of(service.get("entrypoint"))
    if name in ("migrate", "issuer", "verifier-1", "verifier-2"):
        expected = {"migrate": "tessera-migration", "issuer": "tessera-issuer"}.get(name, "tessera-verifier")
        if binary != expected:
            error(here, f"runs {binary}, expected {expected}")
            continue
        env = env_map(service)
        check_env_names(here, binary, list(env))
        if binary == "tessera-verifier":
            if "DATABASE_URL" in env:
                error(here, "a verifier holds no database credentials: it takes everything from the feed (no DATABASE_URL)")
        elif "DATABASE_URL" not in env:
            error(here, "no DATABASE_URL")
        if binary in LISTEN_VAR:
            listen = str(env.get(LISTEN_VAR[binary], ""))
            if listen != f"0.0.0.0:{GRPC_PORT[binary]}":
                error(here, f"{LISTEN_VAR[binary]} must be 0.0.0.0:{GRPC_PORT[binary]} in a container")
            if env.get("TESSERA_METRICS_LISTEN") != f"0.0.0.0:{METRICS_PORT}":
                error(here, f"TESSERA_METRICS_LISTEN must be 0.0.0.0:{METRICS_PORT}")
            endpoint = str(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
            match = re.fullmatch(r"https?://([^:/]+):4317/?", endpoint)
            if not match or match.group(1) not in services:
                error(here, f"OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not a compose service on 4317")
            if not env.get("OTEL_SERVICE_NAME"):
                error(here, "no OTEL_SERVICE_NAME")
        if name == "issuer":
            condition = (service.get("depends_on") or {}).get("migrate", {})
            if not isinstance(condition, dict) or condition.get("condition") != "service_completed_successfully":
                error(here, "must start after migrate completed successfully")
        elif name != "migrate":
            condition = (service.get("depends_on") or {}).get("issuer", {})
            if not isinstance(condition, dict) or condition.get("condition") != "service_started":
                error(here, "must start after the issuer started (it follows the issuer's feed)")
        for key, value in env.items():
            if any(word in key for word in SECRET_WORDS) and value is not None and not str(value).startswith("${"):
                error(here, f"{key} has a literal value: secrets come from the environment")
            if key == "DATABASE_URL" and re.search(r"://[^:/@]+:[^$@][^@]*@", str(value)):
                error(here, "DATABASE_URL has a literal password")
for name, service in services.items():
    image = str(service.get("image", ""))
    if "tessera:" in image and not image.rstrip("}").endswith(f"tessera:{VERSION}"):
        error(f"{where} services.{name}", f"image {image} is not tagged with the workspace version {VERSION}")
issuer_env = env_map(services.get("issuer", {}))
if not re.fullmatch(r"\$\{TESSERA_KEK:\?[^}]+\}", str(issuer_env.get("TESSERA_KEK", ""))):
    error(f"{where} services.issuer", "TESSERA_KEK must be required from the environment: ${TESSERA_KEK:?...}")
migrate_dep = (services.get("migrate", {}).get("depends_on") or {}).get("postgres", {})
if not isinstance(migrate_dep, dict) or migrate_dep.get("condition") != "service_healthy":
    error(f"{where} services.migrate", "must wait for postgres to be healthy")
build = services.get("migrate", {}).get("build", {})
if build:
    context = (DEPLOY / build.get("context", ".")).resolve()
    if context != ROOT:
        error(where, "the build context must be the repository root")
    if not (context / build.get("dockerfile", "Dockerfile")).is_file():
        error(where, "the build's dockerfile does not exist")
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("."):
            path = DEPLOY / source
            if not path.exists():
                error(f"{where} services.{name}", f"mounts {source}, which does not exist")
            elif "docker-entrypoint-initdb.d" in str(volume) and source.endswith(".sh") and not os.access(path, os.X_OK):
                error(f"{where} services.{name}", f"{source} must be executable (else it is sourced)")
issuer_secret = issuer_env.get("TESSERA_FEED_SECRET")
if not issuer_secret:
    error(f"{where} services.issuer", "no TESSERA_FEED_SECRET: its feed would admit no one")
verifier_names: dict[str, str] = {}
for name in ("verifier-1", "verifier-2"):
    env = env_map(services.get(name, {}))
    here = f"{where} services.{name}"
    feed = str(env.get("TESSERA_REVOCATION_FEED", ""))
    if feed != f"http://issuer:{GRPC_PORT['tessera-issuer']}":
        error(here, f"TESSERA_REVOCATION_FEED {feed!r} is not the issuer's gRPC port (http://issuer:{GRPC_PORT['tessera-issuer']})")
    if env.get("TESSERA_FEED_SECRET") != issuer_secret:
        error(here, "TESSERA_FEED_SECRET differs from the issuer's: the feed would refuse it")
    follower = str(env.get("TESSERA_VERIFIER_NAME", ""))
    if follower and follower in verifier_names:
        error(here, f"TESSERA_VERIFIER_NAME {follower} is also {verifier_names[follower]}'s")
    verifier_names[follower] = name
if "TESSERA_VERIFIER_ROLE" in env_map(services.get("migrate", {})):
    error(f"{where} services.migrate", "grants TESSERA_VERIFIER_ROLE, but no verifier here connects to the database")
collector = services.get("otel-collector", {})
if not str(collector.get("image", "")).startswith("otel/opentelemetry-collector-contrib:"):
    error(f"{where} services.otel-collector", "expected the otel/opentelemetry-collector-contrib image")
if any(str(p).endswith(":5432") for p in services.get("postgres", {}).get("ports", [])):
    error(f"{where} services.postgres", "publishes PostgreSQL, whose password has a development default")


# --- the collector --------------------------------------------------------------

otel_path = DEPLOY / "otel-collector.yaml"
otel = yaml.safe_load(otel_path.read_text())
where = rel(otel_path)
grpc = (((otel.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("grpc") or {}
if not str(grpc.get("endpoint", "")).endswith(":4317"):
    error(where, "the otlp receiver must listen for gRPC on :4317")
pipelines = (otel.get("service") or {}).get("pipelines") or {}
if "traces" not in pipelines:
    error(where, "no traces pipeline")
for pipeline, spec in pipelines.items():
    for kind in ("receivers", "processors", "exporters"):
        for component in spec.get(kind, []) or []:
            if component not in (otel.get(kind) or {}):
                error(where, f"pipeline {pipeline} uses {kind[:-1]} {component}, which is not defined")
    if "batch" not in (spec.get("processors") or []):
        error(where, f"pipeline {pipeline} has no batch processor")
for extension in (otel.get("service") or {}).get("extensions", []) or []:
    if extension not in (otel.get("extensions") or {}):
        error(where, f"extension {extension} is enabled but not defined")
if "debug" not in (otel.get("exporters") or {}):
    error(where, "no debug exporter")
scrapes = (((otel.get("receivers") or {}).get("prometheus") or {}).get("config") or {}).get("scrape_configs") or []
for scrape in scrapes:
    for static in scrape.get("static_configs", []):
        for target in static.get("targets", []):
            host, _, port = target.partition(":")
            if host not in services or port != str(METRICS_PORT):
                error(where, f"scrape target {target} is not a compose service's metrics port")


# --- Kubernetes ------------------------------------------------------------------

NOT_IN_KUSTOMIZATION = {"kustomization.yaml", "secret.template.yaml", "feed-tls.template.yaml", "migration-job.yaml"}
kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
listed = kustomization.get("resources", [])
for resource in listed:
    if not (K8S / resource).is_file():
        error("deploy/kubernetes/kustomization.yaml", f"lists {resource}, which does not exist")
for path in sorted(K8S.glob("*.y*ml")):
    if path.name not in NOT_IN_KUSTOMIZATION and path.name not in listed:
        error("deploy/kubernetes/kustomization.yaml", f"does not list {path.name}")
    if path.name in NOT_IN_KUSTOMIZATION - {"kustomization.yaml"} and path.name in listed:
        error("deploy/kubernetes/kustomization.yaml", f"must not list {path.name}")

for image in kustomization.get("images", []):
    if image.get("name") == "tessera" and "newTag" in image and str(image["newTag"]) != VERSION:
        error("deploy/kubernetes/kustomization.yaml", f"images: tessera newTag must be {VERSION}")

objects: list[tuple[str, dict]] = []
for path in sorted(K8S.glob("*.y*ml")):
    if path.name == "kustomization.yaml":
        continue
    for doc in load_all(path):
        objects.append((rel(path), doc))


def of_kind(kind: str) -> list[tuple[str, dict]]:
    return [(p, d) for p, d in objects if d.get("kind") == kind]


for path, doc in objects:
    if "namespace" in doc.get("metadata", {}):
        error(path, f"{doc['kind']} {doc['metadata'].get('name')} names a namespace")

secrets = {d["metadata"]["name"]: d for _, d in of_kind("Secret")}
configmaps = {d["metadata"]["name"]: d for _, d in of_kind("ConfigMap")}
for path, secret in of_kind("Secret"):
    for key, value in (secret.get("stringData") or {}).items():
        if "PLACEHOLDER" not in str(value):
            error(path, f"{key} must be a clearly marked PLACEHOLDER in the template")
    if secret.get("data"):
        error(path, "use stringData placeholders, not data")

# Environment variables that name a file the container must be given.
FILE_VARS = re.compile(r"TESSERA_(TLS_CERT|TLS_KEY|TLS_CLIENT_CA|KEK_FILE|FEED_CA|FEED_CLIENT_CERT|FEED_CLIENT_KEY|ROUTE_RULES|CATALOG)$")


def volume_files(pod: dict, container: dict, where: str) -> dict[str, str]:
    """The files each mount provides (mount path -> how), checking that every
    Secret or ConfigMap a volume names exists and holds the keys it maps."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            error(where, f"mounts the volume {mount['name']}, which the pod does not define")
            continue
        base = mount["mountPath"].rstrip("/")
        if "emptyDir" in volume:
            files[base + "/"] = "emptyDir"
            continue
        for kind, objects_of_kind, name_key, data_keys in (
            ("secret", secrets, "secretName", ("stringData", "data")),
            ("configMap", configmaps, "name", ("data",)),
        ):
            source = volume.get(kind)
            if source is None:
                continue
            name = source.get(name_key)
            found = objects_of_kind.get(name)
            if found is None:
                error(where, f"volume {mount['name']} names the {kind} {name}, which has no manifest or template")
                continue
            keys = set()
            for data_key in data_keys:
                keys |= set(found.get(data_key) or {})
            items = source.get("items")
            if items:
                for item in items:
                    if item["key"] not in keys:
                        error(where, f"volume {mount['name']} maps key {item['key']}, missing from the {kind} {name}")
                    files[f"{base}/{item['path']}"] = f"{kind} {name}"
            else:
                for key in keys:
                    files[f"{base}/{key}"] = f"{kind} {name}"
    return files


pod_labels: dict[str, dict] = {}
container_env: dict[str, dict] = {}
for path, doc in of_kind("Deployment") + of_kind("Job"):
    name = doc["metadata"]["name"]
    here = f"{path} {doc['kind']} {name}"
    template = doc["spec"]["template"]
    pod = template["spec"]
    labels = template.get("metadata", {}).get("labels", {})
    if doc["kind"] == "Deployment":
        pod_labels[name] = labels
        selector = doc["spec"]["selector"].get("matchLabels", {})
        if any(labels.get(k) != v for k, v in selector.items()):
            error(here, "the selector does not match the pod labels")
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        error(here, "pod securityContext.runAsNonRoot must be true")
    if pod.get("automountServiceAccountToken") is not False:
        error(here, "automountServiceAccountToken must be false")
    for container in pod.get("containers", []):
        chere = f"{here} container {container['name']}"
        security = container.get("securityContext", {})
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            error(chere, "seccompProfile must be RuntimeDefault")
        if security.get("readOnlyRootFilesystem") is not True:
            error(chere, "readOnlyRootFilesystem must be true")
        if security.get("allowPrivilegeEscalation") is not False:
            error(chere, "allowPrivilegeEscalation must be false")
        if "ALL" not in (security.get("capabilities") or {}).get("drop", []):
            error(chere, "must drop ALL capabilities")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(bound, {}):
                    error(chere, f"no {bound}.{resource}")
        image = container.get("image", "")
        if image.rpartition(":")[2] != VERSION:
            error(chere, f"image {image} is not tagged with the workspace version {VERSION}")
        binary = binary_of(container.get("command"))
        if binary not in BINARIES:
            error(chere, f"command must name a Tessera binary, not {container.get('command')}")
            continue
        env = [e["name"] for e in container.get("env", [])]
        check_env_names(chere, binary, env)
        files = volume_files(pod, container, chere)
        for entry in container.get("env", []):
            value = str(entry.get("value", ""))
            if FILE_VARS.match(entry["name"]) and value.startswith("/"):
                if value not in files and not any(k.endswith("/") and value.startswith(k) for k in files):
                    error(chere, f"{entry['name']} names {value}, which no volume mount provides")
        for entry in container.get("env", []):
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = secrets.get(ref["name"])
                if secret is None:
                    error(chere, f"refers to the Secret {ref['name']}, which has no template")
                elif ref["key"] not in (secret.get("stringData") or {}):
                    error(chere, f"refers to key {ref['key']} missing from the Secret template")
            value = str(entry.get("value", ""))
            for needed in re.findall(r"\$\(([A-Z_]+)\)", value):
                if needed not in env[: env.index(entry["name"])]:
                    error(chere, f"{entry['name']} expands $({needed}), not defined before it")
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                configmap = configmaps.get(ref["name"])
                if configmap is None:
                    error(chere, f"refers to the ConfigMap {ref['name']}, which does not exist")
                else:
                    check_env_names(f"{chere} (ConfigMap {ref['name']})", binary, list(configmap.get("data", {})))
        if doc["kind"] == "Job":
            if binary != "tessera-migration":
                error(chere, "the Job must run tessera-migration")
            continue
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if ports.get("grpc") != GRPC_PORT.get(binary) or ports.get("metrics") != METRICS_PORT:
            error(chere, f"ports must be grpc {GRPC_PORT.get(binary)} and metrics {METRICS_PORT}")
        values = {e["name"]: e.get("value") for e in container.get("env", [])}
        container_env[name] = {
            "binary": binary,
            "env": {e["name"]: e for e in container.get("env", [])},
            "configmaps": [s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s],
        }
        if values.get(LISTEN_VAR.get(binary, "")) != f"0.0.0.0:{ports.get('grpc')}":
            error(chere, f"{LISTEN_VAR.get(binary)} must be 0.0.0.0 on the grpc port")
        if values.get("TESSERA_METRICS_LISTEN") != f"0.0.0.0:{ports.get('metrics')}":
            error(chere, "TESSERA_METRICS_LISTEN must be 0.0.0.0 on the metrics port")
        if not values.get("OTEL_SERVICE_NAME"):
            error(chere, "no OTEL_SERVICE_NAME")
        # The kubelet's gRPC probe speaks no TLS: a TLS port is probed over
        # TCP instead (and must not be given a gRPC probe that always fails).
        serves_tls = "TESSERA_TLS_CERT" in values
        for probe in ("livenessProbe", "readinessProbe"):
            spec = container.get(probe) or {}
            if serves_tls:
                tcp = spec.get("tcpSocket")
                if not tcp or tcp.get("port") not in ("grpc", ports.get("grpc")):
                    error(chere, f"{probe} must be a TCP probe on the grpc port: it serves TLS, which the kubelet's gRPC probe cannot speak")
            else:
                grpc_probe = spec.get("grpc")
                if not grpc_probe or grpc_probe.get("port") != ports.get("grpc"):
                    error(chere, f"{probe} must be a gRPC probe on the grpc port")
        if serves_tls != ("TESSERA_TLS_KEY" in values):
            error(chere, "TESSERA_TLS_CERT and TESSERA_TLS_KEY go together")

    if doc["kind"] == "Job":
        expected = f"tessera-migration-{VERSION.replace('.', '-')}"
        if name != expected:
            error(here, f"the migration Job must be named {expected} for version {VERSION}")
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            error(here, "restartPolicy must be Never or OnFailure")

deployments = {d["metadata"]["name"]: d for _, d in of_kind("Deployment")}
EXPECTED_DEPLOYMENTS = {"tessera-issuer", "tessera-verifier-relay", "tessera-verifier"}
if set(deployments) != EXPECTED_DEPLOYMENTS:
    error("deploy/kubernetes", f"Deployments are {sorted(deployments)}, expected {sorted(EXPECTED_DEPLOYMENTS)}")
if deployments.get("tessera-issuer", {}).get("spec", {}).get("replicas") != 2:
    error("deploy/kubernetes", "the issuer runs 2 replicas")
if len(of_kind("Job")) != 1:
    error("deploy/kubernetes", "expected one migration Job")


def selects(selector: dict) -> list[str]:
    return [
        name
        for name, labels in pod_labels.items()
        if selector and all(labels.get(k) == v for k, v in selector.items())
    ]


for path, service in of_kind("Service"):
    here = f"{path} Service {service['metadata']['name']}"
    targets = selects(service["spec"].get("selector", {}))
    if len(targets) != 1:
        error(here, f"selects {targets}, expected exactly one Deployment")
    if service["spec"].get("type", "ClusterIP") != "ClusterIP":
        error(here, "must be ClusterIP")
    names = {p.get("name") for p in service["spec"].get("ports", [])}
    if not {"grpc", "metrics"} <= names:
        error(here, "needs ports named grpc and metrics")
    for port in service["spec"].get("ports", []):
        target = port.get("targetPort")
        for deployment in targets:
            container_ports = {
                p.get("name") for c in deployments[deployment]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
            }
            if isinstance(target, str) and target not in container_ports:
                error(here, f"targetPort {target} is no container port of {deployment}")

hpas = of_kind("HorizontalPodAutoscaler")
if [d["metadata"]["name"] for _, d in hpas] != ["tessera-verifier"]:
    error("deploy/kubernetes", "expected one HorizontalPodAutoscaler, for the verifier")
for path, hpa in hpas:
    target = hpa["spec"]["scaleTargetRef"]
    if target.get("kind") != "Deployment" or target.get("name") not in deployments:
        error(path, f"scales {target}, which is not one of the Deployments")
    if hpa.get("apiVersion") != "autoscaling/v2":
        error(path, "use autoscaling/v2")
    if not any((m.get("resource") or {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
        error(path, "scale on CPU")
    if hpa["spec"].get("minReplicas", 1) < 3:
        error(path, "the verifier keeps at least 3 replicas")
    if "replicas" in deployments.get(target.get("name"), {}).get("spec", {}):
        error(path, f"{target.get('name')} sets replicas, which an apply would reset under the HPA")

# --- the revocation feed: issuers -> relays -> verifiers, over TLS -------------------

services_by_name = {d["metadata"]["name"]: d for _, d in of_kind("Service")}


def env_value(deployment: str, var: str) -> str | None:
    info = container_env.get(deployment, {})
    entry = info.get("env", {}).get(var)
    if entry is not None:
        return entry.get("value")
    for configmap in info.get("configmaps", []):
        data = (configmaps.get(configmap) or {}).get("data") or {}
        if var in data:
            return str(data[var])
    return None


def feed_secret_ref(deployment: str) -> tuple | None:
    entry = container_env.get(deployment, {}).get("env", {}).get("TESSERA_FEED_SECRET")
    ref = ((entry or {}).get("valueFrom") or {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def serves_feed(deployment: str) -> bool:
    info = container_env.get(deployment, {})
    if info.get("binary") == "tessera-issuer":
        return True
    return str(env_value(deployment, "TESSERA_SERVE_FEED")).lower() == "true"


issuer_secret = feed_secret_ref("tessera-issuer")
if issuer_secret is None:
    error("deploy/kubernetes Deployment tessera-issuer", "TESSERA_FEED_SECRET must come from a Secret: without it the feed admits no one")
follows: dict[str, list[str]] = {}
for name, info in container_env.items():
    if info["binary"] != "tessera-verifier":
        continue
    here = f"deploy/kubernetes Deployment {name}"
    if "DATABASE_URL" in info["env"] or env_value(name, "DATABASE_URL") is not None:
        error(here, "a verifier here holds no database credentials (no DATABASE_URL): it takes everything from the feed")
    if feed_secret_ref(name) != issuer_secret:
        error(here, "TESSERA_FEED_SECRET must come from the same Secret key as the issuer's")
    feed = env_value(name, "TESSERA_REVOCATION_FEED") or ""
    upstreams = [u.strip() for u in feed.split(",") if u.strip()]
    if not upstreams or feed.strip().lower() == "off":
        error(here, "follows no feed (TESSERA_REVOCATION_FEED), and has no store to read")
    if not env_value(name, "TESSERA_FEED_CA"):
        error(here, "no TESSERA_FEED_CA: the feed's certificates are from the feed CA, not the system's roots")
    follows[name] = []
    for url in upstreams:
        match = re.fullmatch(r"(https?)://([a-z0-9-]+)(?:\.[a-z0-9.-]+)?:(\d+)/?", url)
        if not match:
            error(here, f"feed {url!r} is not scheme://SERVICE:PORT")
            continue
        scheme, host, port = match.group(1), match.group(2), int(match.group(3))
        if scheme != "https":
            error(here, f"feed {url} is plaintext: the feed is served over TLS here")
        service = services_by_name.get(host)
        if service is None:
            error(here, f"feed {url} names {host}, which is no Service")
            continue
        grpc_ports = [p for p in service["spec"].get("ports", []) if p.get("name") == "grpc"]
        if not grpc_ports or grpc_ports[0].get("port") != port:
            error(here, f"feed {url}: port {port} is not the grpc port of the Service {host}")
        for target in selects(service["spec"].get("selector", {})):
            follows[name].append(target)
            if target == name:
                error(here, f"feed {url} is its own Service: it would follow itself")
            elif not serves_feed(target):
                error(here, f"feed {url} is {target}, which serves no feed (TESSERA_SERVE_FEED)")
            elif "TESSERA_TLS_CERT" not in container_env.get(target, {}).get("env", {}):
                error(here, f"feed {url} is {target}, which does not serve TLS")
relays = [n for n in follows if serves_feed(n)]
leaves = [n for n in follows if not serves_feed(n)]
if not any(follows[n] == ["tessera-issuer"] for n in relays):
    error("deploy/kubernetes", "no relay tier: a Deployment with TESSERA_SERVE_FEED=true following the issuer Service")
for leaf in leaves:
    if not follows[leaf] or not all(t in relays for t in follows[leaf]):
        error(f"deploy/kubernetes Deployment {leaf}", f"follows {follows[leaf]}, expected the relay tier {relays}")

pdb_targets = []
for path, pdb in of_kind("PodDisruptionBudget"):
    if pdb.get("apiVersion") != "policy/v1":
        error(path, "use policy/v1")
    targets = selects(pdb["spec"]["selector"].get("matchLabels", {}))
    if len(targets) != 1:
        error(path, f"selects {targets}, expected exactly one Deployment")
    pdb_targets += targets
for deployment in sorted(EXPECTED_DEPLOYMENTS - set(pdb_targets)):
    error("deploy/kubernetes", f"no PodDisruptionBudget for {deployment}")


# --- report ------------------------------------------------------------------------

for note in notes:
    print(f"note: {note}")
for message in errors:
    print(f"error: {message}")
print(f"{len(errors)} consistency errors")
sys.exit(1 if errors else 0)
