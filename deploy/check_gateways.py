"""Structural checks of the proxy examples in deploy/gateways/, run by deploy/check.

nginx and Caddy test their own files in deploy/check when installed; Envoy,
Istio and Traefik are not installed there, and no proxy can tell whether a
configuration asks the verifier the right question. This reads the files
and asserts what the verifier relies on:

- Envoy: client X-Tessera-* identity headers are dropped, then ext_authz
  (V3, fail closed) runs, then the router; its gRPC cluster exists, speaks
  HTTP/2 and is a verifier Service on its gRPC port; per-route
  context_extensions are exactly `resource` and `action`;
- Istio: the AuthorizationPolicy's CUSTOM provider is the one meshConfig
  defines, pointing at a verifier Service on its gRPC port, failing closed;
- Traefik: every router strips client X-Tessera-* headers before anything
  else, forwardAuth calls port 50053 /auth, does not trust a client's
  X-Forwarded-*, and copies the identity headers;
- nginx, Caddy: every call to /auth sets the question and the original
  request itself, and client identity headers are replaced;
- routes.toml: every route is public, or asks both resource and action, or
  neither; placeholders in a resource are captured by its path.

Usage: python3 deploy/check_gateways.py REPO_ROOT (needs PyYAML).
Prints one line per finding and exits 1 if there is any error.
"""

from __future__ import annotations

import pathlib
import re
import sys
import tomllib
import urllib.parse

import yaml

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
GATEWAYS = ROOT / "deploy/gateways"
FORWARD_AUTH_PORT = 50053
IDENTITY = ["X-Tessera-Token-Id", "X-Tessera-Owner-Id", "X-Tessera-Token-Type", "X-Tessera-Expire-Time"]
QUESTION = ["X-Tessera-Resource", "X-Tessera-Action"]
EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
EXT_AUTHZ_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

errors: list[str] = []
notes: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def lower(names: list[str]) -> set[str]:
    return {name.lower() for name in names}


# --- the verifier Services (gRPC port by name) ---------------------------------

verifier_ports: dict[str, int] = {}
for doc in yaml.safe_load_all((ROOT / "deploy/kubernetes/verifier-service.yaml").read_text()):
    if doc and doc.get("kind") == "Service":
        for port in doc["spec"].get("ports", []):
            if port.get("name") == "grpc":
                verifier_ports[doc["metadata"]["name"]] = port["port"]
if not verifier_ports:
    error("deploy/kubernetes/verifier-service.yaml", "no verifier Service with a port named grpc")


def check_verifier_address(where: str, host: str, port: int) -> None:
    """host is a verifier Service's name (short or qualified), port its gRPC port."""
    name = host.split(".")[0]
    if name not in verifier_ports:
        error(where, f"{host} is none of the verifier Services {sorted(verifier_ports)}")
    elif port != verifier_ports[name]:
        error(where, f"port {port} is not {name}'s grpc port {verifier_ports[name]}")


# --- Envoy ------------------------------------------------------------------------

where = "deploy/gateways/envoy.yaml"
envoy = yaml.safe_load((GATEWAYS / "envoy.yaml").read_text())
clusters = {c["name"]: c for c in envoy["static_resources"].get("clusters", [])}
managers = [
    f["typed_config"]
    for listener in envoy["static_resources"].get("listeners", [])
    for chain in listener.get("filter_chains", [])
    for f in chain.get("filters", [])
    if f.get("name") == "envoy.filters.network.http_connection_manager"
]
if not managers:
    error(where, "no http_connection_manager")
for manager in managers:
    filters = [f["name"] for f in manager.get("http_filters", [])]
    if "envoy.filters.http.ext_authz" not in filters:
        error(where, "no envoy.filters.http.ext_authz filter")
        continue
    authz_at = filters.index("envoy.filters.http.ext_authz")
    if filters[-1:] != ["envoy.filters.http.router"]:
        error(where, "the router must be the last HTTP filter, after ext_authz")
    removed = {
        m.get("remove", "").lower()
        for f in manager["http_filters"][:authz_at]
        if f["name"] == "envoy.filters.http.header_mutation"
        for m in f["typed_config"].get("mutations", {}).get("request_mutations", [])
    }
    if not lower(IDENTITY) <= removed:
        error(where, f"a header_mutation filter before ext_authz must remove {sorted(lower(IDENTITY) - removed)}")
    authz = manager["http_filters"][authz_at]["typed_config"]
    if authz.get("@type") != EXT_AUTHZ:
        error(where, f"ext_authz @type is {authz.get('@type')}")
    if authz.get("transport_api_version") != "V3":
        error(where, "ext_authz transport_api_version must be V3")
    if authz.get("failure_mode_allow") is not False:
        error(where, "ext_authz must say failure_mode_allow: false (fail closed)")
    cluster_name = authz.get("grpc_service", {}).get("envoy_grpc", {}).get("cluster_name")
    cluster = clusters.get(cluster_name)
    if cluster is None:
        error(where, f"ext_authz asks the cluster {cluster_name}, which is not defined")
    else:
        options = cluster.get("typed_extension_protocol_options", {}).get(HTTP_OPTIONS, {})
        if "http2_protocol_options" not in options.get("explicit_http_config", {}):
            error(where, f"cluster {cluster_name} must speak HTTP/2 (explicit_http_config.http2_protocol_options)")
        for group in cluster.get("load_assignment", {}).get("endpoints", []):
            for endpoint in group.get("lb_endpoints", []):
                socket = endpoint["endpoint"]["address"]["socket_address"]
                check_verifier_address(f"{where} cluster {cluster_name}", socket["address"], socket["port_value"])
    asked = disabled = 0
    for host in manager.get("route_config", {}).get("virtual_hosts", []):
        for route in host.get("routes", []):
            here = f"{where} route {route.get('match')}"
            if route.get("route", {}).get("cluster") not in clusters:
                error(here, f"routes to the undefined cluster {route.get('route', {}).get('cluster')}")
            per_route = route.get("typed_per_filter_config", {}).get("envoy.filters.http.ext_authz")
            if per_route is None:
                continue
            if per_route.get("@type") != EXT_AUTHZ_PER_ROUTE:
                error(here, f"ext_authz per-route @type is {per_route.get('@type')}")
            if per_route.get("disabled") is True:
                disabled += 1
                continue
            extensions = per_route.get("check_settings", {}).get("context_extensions", {})
            if set(extensions) != {"resource", "action"} or not all(extensions.values()):
                error(here, f"context_extensions must be exactly resource and action, not {extensions}")
            asked += 1
    if not asked or not disabled:
        error(where, "expected a route asking (resource, action) and a route with ext_authz disabled")


# --- Istio ------------------------------------------------------------------------

mesh_where = "deploy/gateways/istio/mesh-config.yaml"
mesh = yaml.safe_load((GATEWAYS / "istio/mesh-config.yaml").read_text())
providers = {}
for provider in mesh.get("spec", {}).get("meshConfig", {}).get("extensionProviders", []):
    grpc = provider.get("envoyExtAuthzGrpc")
    if grpc is None:
        continue
    providers[provider["name"]] = grpc
    here = f"{mesh_where} provider {provider['name']}"
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9-]+\.svc\.cluster\.local", grpc.get("service", "")):
        error(here, f"service {grpc.get('service')} must be SERVICE.NAMESPACE.svc.cluster.local")
    check_verifier_address(here, grpc.get("service", ""), grpc.get("port"))
    if grpc.get("failOpen") is True:
        error(here, "failOpen must not be true")
if not providers:
    error(mesh_where, "no envoyExtAuthzGrpc extension provider")

policy_where = "deploy/gateways/istio/authorization-policy.yaml"
for policy in yaml.safe_load_all((GATEWAYS / "istio/authorization-policy.yaml").read_text()):
    spec = policy.get("spec", {})
    if policy.get("apiVersion") != "security.istio.io/v1" or policy.get("kind") != "AuthorizationPolicy":
        error(policy_where, "expected a security.istio.io/v1 AuthorizationPolicy")
    if spec.get("action") != "CUSTOM":
        error(policy_where, "action must be CUSTOM")
    if spec.get("provider", {}).get("name") not in providers:
        error(policy_where, f"provider {spec.get('provider', {}).get('name')} is not in meshConfig {sorted(providers)}")
    if not spec.get("selector", {}).get("matchLabels"):
        error(policy_where, "select the workload it applies to")
    if not spec.get("rules"):
        error(policy_where, "a CUSTOM policy without rules asks about nothing")


# --- Traefik ----------------------------------------------------------------------

where = "deploy/gateways/traefik.yaml"
traefik = yaml.safe_load((GATEWAYS / "traefik.yaml").read_text())["http"]
middlewares = traefik.get("middlewares", {})


def strips(name: str) -> bool:
    headers = middlewares.get(name, {}).get("headers", {}).get("customRequestHeaders", {})
    return all(headers.get(h) == "" for h in IDENTITY + QUESTION)


for name, middleware in middlewares.items():
    auth = middleware.get("forwardAuth")
    if auth is None:
        continue
    here = f"{where} middleware {name}"
    address = urllib.parse.urlsplit(auth.get("address", ""))
    if address.port != FORWARD_AUTH_PORT or address.path != "/auth":
        error(here, f"address {auth.get('address')} must be the verifier's :{FORWARD_AUTH_PORT}/auth")
    if auth.get("trustForwardHeader") is True:
        error(here, "trustForwardHeader would let a client name the path the verifier sees")
    if not lower(IDENTITY) <= lower(auth.get("authResponseHeaders", [])):
        error(here, f"authResponseHeaders must copy {IDENTITY}")
    allowed = auth.get("authRequestHeaders")
    if allowed is not None and not lower(["Authorization", *QUESTION]) <= lower(allowed):
        error(here, "authRequestHeaders must pass Authorization and the question headers")
for name, router in traefik.get("routers", {}).items():
    here = f"{where} router {name}"
    chain = router.get("middlewares", [])
    for middleware in chain:
        if middleware not in middlewares:
            error(here, f"uses the undefined middleware {middleware}")
    if router.get("service") not in traefik.get("services", {}):
        error(here, f"routes to the undefined service {router.get('service')}")
    if not chain or not strips(chain[0]):
        error(here, f"must start with a headers middleware removing {IDENTITY + QUESTION}")
    auths = [i for i, m in enumerate(chain) if "forwardAuth" in middlewares.get(m, {})]
    if auths and auths[-1] != len(chain) - 1:
        error(here, "forwardAuth must be the last middleware: nothing may change the headers it copied")


# --- nginx and Caddy: what the calls to /auth send ---------------------------------

where = "deploy/gateways/nginx.conf"
nginx = re.sub(r"#[^\n]*", "", (GATEWAYS / "nginx.conf").read_text())


def blocks(text: str, opener: str) -> list[tuple[str, str]]:
    """(heading, body) of every `opener ... {...}` block, braces balanced."""
    found = []
    for match in re.finditer(rf"{opener}([^{{;]*)\{{", text):
        depth, at = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        found.append((match.group(1).strip(), text[match.end() : at - 1]))
    return found


def sets(body: str) -> dict[str, str]:
    return {m[0].lower(): m[1].strip('"') for m in re.findall(r"proxy_set_header\s+(\S+)\s+([^;]*);", body)}


upstreams = {name: body for name, body in blocks(nginx, r"\bupstream\s+")}
auth_locations = [(name, body) for name, body in blocks(nginx, r"\blocation\s+") if re.search(r"proxy_pass\s+\S+/auth;", body)]
if not auth_locations:
    error(where, "no location proxies to the verifier's /auth")
for name, body in auth_locations:
    here = f"{where} location {name}"
    target = re.search(r"proxy_pass\s+http://([^/;]+)/auth;", body).group(1)
    ports = re.findall(r"server\s+\S+:(\d+)", upstreams.get(target, f"server {target};"))
    if not ports or any(int(p) != FORWARD_AUTH_PORT for p in ports):
        error(here, f"{target} is not the verifier's forward-auth port {FORWARD_AUTH_PORT}")
    if "internal;" not in body or "proxy_pass_request_body off;" not in body:
        error(here, "must be internal, with proxy_pass_request_body off")
    header = sets(body)
    for needed in ("x-original-uri", "x-original-method", "content-length", *lower(QUESTION)):
        if needed not in header:
            error(here, f"must set {needed} itself (proxy_set_header), whatever the client sent")
    for cleared in ("x-forwarded-uri", "x-forwarded-method"):
        if header.get(cleared, None) != "":
            error(here, f"must clear a client's {cleared}: the verifier reads it too")
server_level = sets(re.sub(r"\blocation\b[^{]*\{[^{}]*\}", "", nginx))
for name in IDENTITY:
    value = server_level.get(name.lower(), "")
    if not value.startswith("$"):
        error(where, f"the server must set {name} from auth_request_set, replacing a client's")
for name, body in blocks(nginx, r"\blocation\s+"):
    if "proxy_set_header" in body and (name, body) not in auth_locations:
        error(f"{where} location {name}", "sets its own proxy_set_header, so the identity headers are not replaced there")

where = "deploy/gateways/Caddyfile"
caddy = re.sub(r"#[^\n]*", "", (GATEWAYS / "Caddyfile").read_text())
STRIP = ["request_header -X-Tessera-*", "request_header -X-Original-URI", "request_header -X-Original-Method"]
strip_snippet = {name.rstrip(")") for name, body in blocks(caddy, r"(?m)^\(") if all(line in body for line in STRIP)}
for heading, body in blocks(caddy, r"\bforward_auth\b"):
    here = f"{where} forward_auth{' ' + heading if heading else ''}"
    if not re.search(rf":{FORWARD_AUTH_PORT}$", heading):
        error(here, f"must call the verifier's forward-auth port {FORWARD_AUTH_PORT}")
    if not re.search(r"^\s*uri /auth\?\s*$", body, re.M):
        error(here, "must call uri /auth? (no query string: it may hold ?fmetoken=)")
    copied = set(re.findall(r"copy_headers\s+([^\n]*)", body)[0].split()) if "copy_headers" in body else set()
    if not set(IDENTITY) <= copied:
        error(here, f"must copy_headers {IDENTITY}")
    asked = [h for h in QUESTION if re.search(rf"header_up\s+{h}\s", body)]
    if asked and asked != QUESTION:
        error(here, "set both X-Tessera-Resource and X-Tessera-Action, or neither")
for heading, body in blocks(caddy, r"\bhandle\b"):
    here = f"{where} handle {heading or '(the rest)'}"
    if "forward_auth" in body and not body.strip().startswith("route {"):
        error(here, "needs a route block: Caddy's own order runs request_header after forward_auth")
    first = body.strip().removeprefix("route {").strip().split("\n")[0].strip()
    if first.removeprefix("import ") not in strip_snippet:
        error(here, f"must first import a snippet that does {STRIP}")


# --- routes.toml ------------------------------------------------------------------

where = "deploy/gateways/routes.toml"
rules = tomllib.loads((GATEWAYS / "routes.toml").read_text()).get("route", [])
if not rules:
    error(where, "no [[route]]: the verifier would refuse every request")
for number, route in enumerate(rules, 1):
    here = f"{where} route {number}"
    unknown = set(route) - {"methods", "path", "resource", "action", "public"}
    if unknown:
        error(here, f"unknown keys {sorted(unknown)}")
    path = route.get("path", "")
    segments = path.split("/")[1:]
    if not path.startswith("/") or "" in segments[:-1] or "**" in segments[:-1]:
        error(here, f"path {path!r}: starts with /, no empty segment, ** only last")
    given = [key for key in ("resource", "action") if key in route]
    if route.get("public") is True and given:
        error(here, "a public route takes no resource or action")
    elif len(given) == 1:
        error(here, "give both resource and action, or neither")
    captured = set(re.findall(r"\{(\w+)\}", path))
    for name in re.findall(r"\{(\w+)\}", route.get("resource", "")):
        if name not in captured:
            error(here, f"resource uses {{{name}}}, which the path does not capture")
    methods = route.get("methods")
    if methods is not None and (not methods or not all(str(m).isalpha() for m in methods)):
        error(here, "methods must be a non-empty list of HTTP methods, or left out")


# --- the verifier settings the examples name ---------------------------------------

read = set()
for source in (ROOT / "crates/verifier/src").rglob("*.rs"):
    read.update(re.findall(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"', source.read_text()))
named = set()
for path in sorted(GATEWAYS.rglob("*")):
    if path.is_file():
        named.update(re.findall(r"\bTESSERA_[A-Z0-9_]+", path.read_text()))
for name in sorted(named - read):
    notes.append(f"deploy/gateways names {name}, which the verifier does not read yet")


for note in notes:
    print(f"note: {note}")
for message in errors:
    print(f"error: {message}")
print(f"{len(errors)} gateway errors")
sys.exit(1 if errors else 0)
