"""Validates the rendered Kubernetes manifests of sasrelay offline (run by check.sh).

check.sh runs it once per variant: `base` (deploy/kubernetes: one replica) and `ha`
(deploy/kubernetes/ha: two replicas, one leader). Every problem is reported, then the exit
code is 1; 0 when there is none. What is checked:

1. Schemas. Every built-in object against the Kubernetes OpenAPI schemas that the PyPI package
   kubernetes-validate bundles, in strict mode (an unknown field is an error), for each version
   in SASRELAY_K8S_VERSIONS. ServiceMonitor and PrometheusRule against the pydantic models that
   cloudcoil-models-prometheus-operator generates from the Prometheus Operator's CRD schemas;
   pydantic drops unknown fields, so a field that does not survive the round trip is reported
   as unknown too.
2. The contract between the objects and sasrelay.toml: for `base` one replica, Recreate, the
   state on the PersistentVolumeClaim, no [ha] and no API token; for `ha` what section 6 says;
   for both the hardening
   (non-root with a fixed uid/gid, fsGroup, read-only root, no privilege escalation, no
   capabilities, RuntimeDefault seccomp), resources, probes on /healthz and /readyz through
   the port `[admin] health_listen` binds, the admin API on loopback, the state directory on
   the volume, every `{ env = ... }` of the config provided by the container, the grace period
   above `[daemon] shutdown_grace`, the RRSA annotation and injection label, the Service,
   ServiceMonitor and NetworkPolicy reaching that port, the image tag following Cargo.toml's
   version.
3. The PrometheusRule carries every alert of the README's "Monitoring" section with the same
   expression and `for`.
4. The RAM policies: the read-only policy allows exactly the actions src/sas/ calls, the trust
   policy names the pod's namespace and ServiceAccount.
5. `sasrelay check` passes, without a warning, on the ConfigMap's sasrelay.toml with the
   container's own arguments (`run` turned into `check`) in the environment the pod has (the
   Secret's variables and what the RRSA webhook injects).
6. `ha` only: two replicas, RollingUpdate with maxSurge 0 and maxUnavailable 1, a required
   podAntiAffinity on kubernetes.io/hostname and a ScheduleAnyway spread over
   topology.kubernetes.io/zone, each store on an emptyDir with a sizeLimit and no
   PersistentVolumeClaim at all, POD_NAME from metadata.name, the API token mounted, a grace
   period for the last checkpoint and the Lease's release; [ha] coordinator = "kubernetes"
   in-cluster with no fixed identity, and the config otherwise equal to the base's; a Role
   granting exactly get and update on the Lease and the checkpoint ConfigMap by name and
   create on each kind, bound to the pod's ServiceAccount (no cluster-wide role); a
   PodDisruptionBudget of maxUnavailable 1; egress to the API server (TCP 443 and 6443) not
   blocked by a NetworkPolicy; the image the base's.

Usage: validate.py RENDERED.yaml REPO_ROOT SASRELAY_BINARY [base|ha]
"""

import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

PROBLEMS = []


def problem(where, message):
    PROBLEMS.append(f"{where}: {message}")


def duration_seconds(text):
    """sasrelay's durations ("10s", "1m30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


# -- 1. schemas -------------------------------------------------------------------------------


def validate_builtin(obj, versions):
    from kubernetes_validate import utils

    for version in versions:
        try:
            utils.validate(obj, version, strict=True)
        except utils.ValidationError as e:
            path = "/".join(str(p) for p in e.path) or "(root)"
            problem(name(obj), f"Kubernetes {version} schema: at {path}: {e.message}")
        except utils.SchemaNotFoundError as e:
            problem(name(obj), e.message)


def unknown_fields(given, kept, path=""):
    """Keys in `given` that the model dropped (absent from `kept`), as paths."""
    out = []
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}/{key}")
            else:
                out.extend(unknown_fields(value, kept[key], f"{path}/{key}"))
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (g, k) in enumerate(zip(given, kept)):
            out.extend(unknown_fields(g, k, f"{path}/{i}"))
    return out


def validate_monitoring(obj):
    import pydantic
    from cloudcoil.models.prometheus_operator import v1

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}.get(
        obj.get("kind")
    )
    if model is None or obj.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(name(obj), "no schema for this kind in the bundled Prometheus Operator CRDs")
        return
    try:
        parsed = model.model_validate(obj)
    except pydantic.ValidationError as e:
        for err in e.errors():
            path = "/".join(str(p) for p in err["loc"])
            problem(name(obj), f"Prometheus Operator CRD schema: at {path}: {err['msg']}")
        return
    kept = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    for path in unknown_fields(obj, kept):
        problem(name(obj), f"Prometheus Operator CRD schema: unknown field {path}")


# -- 2. the contract --------------------------------------------------------------------------


def name(obj):
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


def only(objs, kind):
    found = [o for o in objs if o.get("kind") == kind]
    if len(found) != 1:
        problem(kind, f"expected exactly one, found {len(found)}")
        return None
    return found[0]


def env_refs(value):
    """Every `{ env = "X" }` secret reference in a parsed TOML value."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield value["env"]
        for v in value.values():
            yield from env_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from env_refs(v)


def check_pod_security(where, pod):
    sc = pod.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True:
        problem(where, "pod securityContext.runAsNonRoot must be true")
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if not isinstance(sc.get(key), int) or sc[key] == 0:
            problem(where, f"pod securityContext.{key} must be a fixed non-root id")
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
    for c in pod.get("containers", []):
        csc = c.get("securityContext") or {}
        at = f"{where} container {c.get('name')}"
        if csc.get("readOnlyRootFilesystem") is not True:
            problem(at, "securityContext.readOnlyRootFilesystem must be true")
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(at, "securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            problem(at, "securityContext.capabilities.drop must hold ALL")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if "memory" not in (res.get(part) or {}):
                problem(at, f"resources.{part}.memory must be set (README's benchmark figures)")


def container_port(container, port):
    """The number a probe's or Service's `port` (a name or a number) resolves to."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def load_config(objs, pod, container):
    """The sasrelay.toml the container runs with, its path, and the mounts by volume."""
    args = container.get("args") or []
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        problem("Deployment", "the container's args must name --config FILE")
        return None, None
    path = args[args.index("--config") + 1]
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        volume = next(v for v in pod.get("volumes", []) if v["name"] == mount["name"])
        cm_name = (volume.get("configMap") or {}).get("name")
        cm = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm_name), None)
        key = path[len(prefix):]
        if cm is None or key not in (cm.get("data") or {}):
            problem("Deployment", f"--config {path}: no key {key} in ConfigMap {cm_name}")
            return None, None
        try:
            return tomllib.loads(cm["data"][key]), cm["data"][key]
        except tomllib.TOMLDecodeError as e:
            problem(f"ConfigMap/{cm_name}", f"{key} is not TOML: {e}")
            return None, None
    problem("Deployment", f"--config {path} is on no volume of the pod")
    return None, None


def check_deployment(objs, variant):
    dep = only(objs, "Deployment")
    if dep is None:
        return None
    spec = dep["spec"]
    strategy = spec.get("strategy") or {}
    if variant == "ha":
        if spec.get("replicas") != 2:
            problem(name(dep), "replicas must be 2: one leader and one standby")
        rolling = strategy.get("rollingUpdate") or {}
        if strategy.get("type") != "RollingUpdate" or rolling.get("maxSurge") != 0 or rolling.get("maxUnavailable") != 1:
            problem(name(dep), f"strategy must be RollingUpdate with maxSurge 0 and maxUnavailable 1 (one pod per node: a surge pod may have no node), not {strategy}")
    else:
        if spec.get("replicas") != 1:
            problem(name(dep), "replicas must be 1: two pods would poll and deliver everything twice")
        if strategy.get("type") != "Recreate":
            problem(name(dep), "strategy.type must be Recreate: a rolling update runs two pods at once")
    pod = spec["template"]["spec"]
    check_pod_security(name(dep), pod)
    containers = pod.get("containers", [])
    if len(containers) != 1:
        problem(name(dep), "expected one container")
        return None
    container = containers[0]
    config, text = load_config(objs, pod, container)
    if config is None:
        return None
    return {"dep": dep, "pod": pod, "container": container, "config": config, "text": text, "variant": variant}


def check_config_against_pod(objs, dep, pod, container, config, variant):
    where = name(dep)
    admin = config.get("admin") or {}
    listen = admin.get("listen", "127.0.0.1:9595")
    if listen != "off":
        host = listen.rsplit(":", 1)[0].strip("[]")
        if not ipaddress.ip_address(host).is_loopback:
            problem("sasrelay.toml", f"[admin] listen = {listen!r}: keep the admin API on loopback in the pod")
    health = admin.get("health_listen", "off")
    if health == "off":
        problem("sasrelay.toml", "[admin] health_listen must be set: the probes and Prometheus need it")
        health_port = None
    else:
        health_port = int(health.rsplit(":", 1)[1])
    probes = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        p = container.get(probe)
        if p is None:
            if probe != "startupProbe":
                problem(where, f"{probe} is missing")
            continue
        get = p.get("httpGet") or {}
        if get.get("path") != path:
            problem(where, f"{probe} must ask for {path}, not {get.get('path')}")
        if health_port is not None and container_port(container, get.get("port")) != health_port:
            problem(where, f"{probe} must use port {health_port} ([admin] health_listen)")
    state_dir = (config.get("state") or {}).get("directory")
    if variant == "ha":
        # Each replica's own store: sled locks it, so it is never shared.
        kind, wanted = "emptyDir", "an emptyDir mount (each replica's own store)"
    else:
        kind, wanted = "persistentVolumeClaim", "a PersistentVolumeClaim mount"
    state_volumes = {v["name"]: v for v in pod.get("volumes", []) if kind in v}
    mounted = [
        state_volumes[m["name"]]
        for m in container.get("volumeMounts", [])
        if m["mountPath"].rstrip("/") == str(state_dir).rstrip("/") and m["name"] in state_volumes
    ]
    if not mounted:
        problem(where, f"[state] directory {state_dir} must be {wanted}")
    elif variant == "ha" and not (mounted[0]["emptyDir"] or {}).get("sizeLimit"):
        problem(where, f"the state emptyDir {mounted[0]['name']} needs a sizeLimit (else it may fill the node's disk)")
    provided = {e["name"] for e in container.get("env", [])}
    for var in sorted(set(env_refs(config))):
        if var not in provided:
            problem(where, f"sasrelay.toml reads {{ env = \"{var}\" }}, which the container does not set")
    for e in container.get("env", []):
        if "value" in e and re.search(r"(SECRET|TOKEN|PASSWORD|URL|KEY)", e["name"]):
            problem(where, f"env {e['name']} must come from a Secret (valueFrom.secretKeyRef), not a literal")
    grace = duration_seconds((config.get("daemon") or {}).get("shutdown_grace", "10s"))
    period = pod.get("terminationGracePeriodSeconds", 30)
    if variant == "ha":
        # The term's deliveries (shutdown_grace), the last checkpoint (bounded by the term's
        # deadline, renew_deadline), the release (a read and a write, renew_deadline / 2 each),
        # the remaining tasks (shutdown_grace), the flush (10 s).
        renew = duration_seconds((config.get("ha") or {}).get("renew_deadline", "10s"))
        need = 2 * grace + 2 * renew + 10
        if period < need:
            problem(where, f"terminationGracePeriodSeconds {period} must be at least 2 x [daemon] shutdown_grace ({grace:g}s) + 2 x [ha] renew_deadline ({renew:g}s) + 10s = {need:g}s: the leader's deliveries, last checkpoint, the Lease's release and the flush")
    elif period < grace + 10:
        problem(where, f"terminationGracePeriodSeconds {period} must be at least [daemon] shutdown_grace ({grace:g}s) + 10s for the final flush")
    if variant != "ha":
        if "ha" in config:
            problem("sasrelay.toml", "[ha] belongs to the ha/ variant (two replicas, the API token, the Role), not to one replica")
        if pod.get("automountServiceAccountToken") is not False:
            problem(where, "automountServiceAccountToken must be false: one replica never calls the Kubernetes API")
    check_rrsa(objs, dep, pod, config)
    return health_port


def check_rrsa(objs, dep, pod, config):
    kinds = {((s.get("credentials") or {}).get("type")) for s in config.get("source", [])}
    if "rrsa" not in kinds:
        return
    sa_name = pod.get("serviceAccountName")
    sa = next((o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == sa_name), None)
    if sa is None:
        problem(name(dep), f"serviceAccountName {sa_name} is not among the manifests")
        return
    if not (sa["metadata"].get("annotations") or {}).get("pod-identity.alibabacloud.com/role-name"):
        problem(name(sa), "RRSA needs the annotation pod-identity.alibabacloud.com/role-name")
    labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    ns = next((o for o in objs if o["kind"] == "Namespace"), {"metadata": {}})
    ns_labels = ns["metadata"].get("labels") or {}
    key = "pod-identity.alibabacloud.com/injection"
    if labels.get(key) != "on" and ns_labels.get(key) != "on":
        problem(name(dep), f"RRSA injection needs the label {key}: \"on\" on the pod or the namespace")


def check_service_and_monitor(objs, found, health_port):
    dep, container = found["dep"], found["container"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    svc = only(objs, "Service")
    if svc is None:
        return
    selector = svc["spec"].get("selector") or {}
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problem(name(svc), f"selector {selector} does not select the pod ({pod_labels})")
    for port in svc["spec"].get("ports", []):
        if container_port(container, port.get("targetPort", port.get("port"))) != health_port:
            problem(name(svc), f"port {port.get('name')} must reach [admin] health_listen's port {health_port}")
    for sm in (o for o in objs if o["kind"] == "ServiceMonitor"):
        labels = svc["metadata"].get("labels") or {}
        wanted = (sm["spec"].get("selector") or {}).get("matchLabels") or {}
        if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
            problem(name(sm), f"selector {wanted} does not select Service {svc['metadata']['name']}")
        names = {p.get("name") for p in svc["spec"].get("ports", [])}
        for ep in sm["spec"].get("endpoints", []):
            if ep.get("port") not in names:
                problem(name(sm), f"endpoint port {ep.get('port')} is not a port of the Service")
            if ep.get("path", "/metrics") != "/metrics":
                problem(name(sm), "endpoint path must be /metrics")
    for np in (o for o in objs if o["kind"] == "NetworkPolicy"):
        chosen = (np["spec"].get("podSelector") or {}).get("matchLabels") or {}
        if any(pod_labels.get(k) != v for k, v in chosen.items()):
            continue
        if "Ingress" not in (np["spec"].get("policyTypes") or ["Ingress"]):
            continue  # egress only: ingress stays as it was
        allowed = [
            container_port(container, p.get("port"))
            for rule in np["spec"].get("ingress", [])
            for p in rule.get("ports", [])
        ]
        if health_port not in allowed:
            problem(name(np), f"ingress must allow the health port {health_port}: the probes and Prometheus use it")
    if svc["metadata"]["name"] != "sasrelay":
        problem(name(svc), "the README's SasrelayDown alert asks for up{job=\"sasrelay\"}: keep the Service named sasrelay")


def check_image(found, root):
    cargo = tomllib.load(open(os.path.join(root, "Cargo.toml"), "rb"))
    version = cargo["package"]["version"]
    image = found["container"].get("image", "")
    if not image.endswith(f":{version}"):
        problem("kustomization.yaml images", f"the image {image!r} must be tagged with the crate's version {version}")


# -- 3. the README's alerts -------------------------------------------------------------------


def readme_alerts(root):
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        rules = yaml.safe_load(block)
        if isinstance(rules, list) and rules and all(isinstance(r, dict) and "alert" in r for r in rules):
            return rules
    problem("README.md", "no ```yaml block of alert rules found in the Monitoring section")
    return []


def check_alerts(objs, root):
    rules = {}
    for pr in (o for o in objs if o["kind"] == "PrometheusRule"):
        for group in pr["spec"].get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    if not rules:
        return
    squash = lambda s: " ".join(str(s).split())  # noqa: E731
    for want in readme_alerts(root):
        have = rules.get(want["alert"])
        if have is None:
            problem("PrometheusRule", f"the README's alert {want['alert']} is missing")
            continue
        if squash(have.get("expr")) != squash(want.get("expr")):
            problem("PrometheusRule", f"{want['alert']}: expr differs from the README's:\n    {squash(have.get('expr'))}\n    {squash(want.get('expr'))}")
        if have.get("for") != want.get("for"):
            problem("PrometheusRule", f"{want['alert']}: for {have.get('for')!r} differs from the README's {want.get('for')!r}")


# -- 4. RAM policies --------------------------------------------------------------------------


ACTION = re.compile(r'"((?:Describe|Get|List|Handle|Modify|Ignore|Validate|Create|Delete|Update|Add|Operate|Fix|Confirm)[A-Z][A-Za-z]+)"')


CALL = re.compile(r'\.call(?:_once)?\(\s*"([A-Z][A-Za-z]+)"')

# The module of handling findings (issue 17): its calls need the separate handling policy.
HANDLING_FILE = "handle.rs"


def sas_code(root, file):
    """A src/sas/ file's code outside its tests, comments removed."""
    code = open(os.path.join(root, "src", "sas", file), encoding="utf-8").read().split("#[cfg(test)]")[0]
    return "\n".join(line.split("//")[0] for line in code.splitlines())


def called_actions(root):
    """Security Center actions named as string literals in src/sas/ outside its tests and
    outside the handling module."""
    actions = set()
    for file in sorted(os.listdir(os.path.join(root, "src", "sas"))):
        if file.endswith(".rs") and file != HANDLING_FILE:
            actions |= set(ACTION.findall(sas_code(root, file)))
    return actions


def handling_actions(root):
    """The actions src/sas/handle.rs calls (the first argument of `call` / `call_once`)."""
    return set(CALL.findall(sas_code(root, HANDLING_FILE)))


def policy_actions(path):
    try:
        doc = json.load(open(path))
    except (OSError, json.JSONDecodeError) as e:
        problem(path, f"not a readable JSON policy: {e}")
        return set()
    if doc.get("Version") != "1":
        problem(path, "a RAM policy document has \"Version\": \"1\"")
    out = set()
    for st in doc.get("Statement", []):
        acts = st.get("Action", [])
        out |= set([acts] if isinstance(acts, str) else acts)
    return out


def check_ram(objs, found, here, root):
    ram = os.path.join(here, "ram")
    readonly = policy_actions(os.path.join(ram, "readonly-policy.json"))
    wanted = {f"yundun-sas:{a}" for a in called_actions(root)}
    if not wanted:
        problem("src/sas", "no Security Center action found: did the code move?")
    for a in sorted(wanted - readonly):
        problem("ram/readonly-policy.json", f"src/sas/ calls {a}, which the policy does not allow")
    for a in sorted(readonly - wanted):
        problem("ram/readonly-policy.json", f"allows {a}, which src/sas/ never calls")
    handling = policy_actions(os.path.join(ram, "handling-policy.json"))
    for a in sorted(handling):
        if not a.startswith("yundun-sas:"):
            problem("ram/handling-policy.json", f"{a} is not a Security Center (yundun-sas:) action")
    handles = {f"yundun-sas:{a}" for a in handling_actions(root)}
    if not handles:
        problem("src/sas/handle.rs", "no handling action found: did the code move?")
    for a in sorted(handles - handling - readonly):
        problem("ram/handling-policy.json", f"src/sas/handle.rs calls {a}, which the policy does not allow")
    for a in sorted(handling - handles):
        problem("ram/handling-policy.json", f"allows {a}, which src/sas/handle.rs never calls")
    for a in sorted(handling & readonly):
        problem("ram/handling-policy.json", f"{a} is in the read-only policy already")
    trust = json.load(open(os.path.join(ram, "trust-policy.json")))
    ns = found["dep"]["metadata"].get("namespace")
    sa = found["pod"].get("serviceAccountName")
    subject = f"system:serviceaccount:{ns}:{sa}"
    subs = [
        ((st.get("Condition") or {}).get("StringEquals") or {}).get("oidc:sub")
        for st in trust.get("Statement", [])
    ]
    if subject not in subs:
        problem("ram/trust-policy.json", f"oidc:sub must be {subject} (the pod's namespace and ServiceAccount), found {subs}")


# -- 5. sasrelay check ------------------------------------------------------------------------


def check_config_with_binary(found, binary):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sasrelay.toml")
        with open(config, "w") as f:
            f.write(found["text"])
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "SASRELAY_"))}
        env["NO_COLOR"] = "1"
        # What the pod's environment holds: the Secret's variables, and what the RRSA webhook
        # injects.
        for e in found["container"].get("env", []):
            env[e["name"]] = "https://hooks.example.com/sasrelay" if "URL" in e["name"] else "placeholder"
        env.update(
            ALIBABA_CLOUD_ROLE_ARN="acs:ram::1234567890123456:role/sasrelay-reader",
            ALIBABA_CLOUD_OIDC_PROVIDER_ARN="acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789abcdef0123456789abcdef",
            ALIBABA_CLOUD_OIDC_TOKEN_FILE=token,
        )
        # The container's own arguments, `run` turned into `check`: the flags must parse too.
        args = list(found["container"].get("args") or [])
        if "run" not in args:
            problem("Deployment", f"the container's args {args} must start the daemon (`run`)")
            return
        args[args.index("run")] = "check"
        args[args.index("--config") + 1] = config
        run = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
        out = (run.stdout + run.stderr).replace(config, "sasrelay.toml")
        if run.returncode != 0:
            shown = " ".join("sasrelay.toml" if a == config else a for a in args)
            problem("ConfigMap sasrelay.toml", f"`sasrelay {shown}` exited {run.returncode}:\n{out}")
        elif "warning" in out.lower():
            problem("ConfigMap sasrelay.toml", f"`sasrelay check` warns in the pod's environment:\n{out}")
        else:
            print(f"sasrelay check: {' / '.join(out.strip().splitlines()[:1]) or '(no output)'}")


# -- 6. two replicas (ha/) ---------------------------------------------------------------------


LEASE_GROUP = "coordination.k8s.io"
# The API server: the `kubernetes` Service's port, and its endpoints' (ACK: 6443).
API_PORTS = (443, 6443)


def selects(selector, labels):
    """Whether a matchLabels-only label selector selects these labels."""
    selector = selector or {}
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and not selector.get("matchExpressions") and all(
        labels.get(k) == v for k, v in wanted.items()
    )


def check_ha(objs, found, here):
    dep, pod, container, config = found["dep"], found["pod"], found["container"], found["config"]
    where = name(dep)
    namespace = dep["metadata"].get("namespace")
    before = len(PROBLEMS)
    labels = dep["spec"]["template"]["metadata"].get("labels") or {}

    # Placement: never both on one node; across zones where there are several.
    terms = ((pod.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    if not any(t.get("topologyKey") == "kubernetes.io/hostname" and selects(t.get("labelSelector"), labels) for t in terms):
        problem(where, "needs a required podAntiAffinity on kubernetes.io/hostname selecting its own pods: one node's failure must leave a replica")
    spread = pod.get("topologySpreadConstraints") or []
    if not any(
        c.get("topologyKey") == "topology.kubernetes.io/zone" and c.get("whenUnsatisfiable") == "ScheduleAnyway" and selects(c.get("labelSelector"), labels)
        for c in spread
    ):
        problem(where, "needs a topologySpreadConstraint on topology.kubernetes.io/zone with whenUnsatisfiable ScheduleAnyway (single-zone clusters must still schedule)")

    # The store: each replica's own, no claim anywhere.
    for o in objs:
        if o["kind"] == "PersistentVolumeClaim":
            problem(name(o), "two replicas keep their stores on emptyDirs: no PersistentVolumeClaim")
    for v in pod.get("volumes", []):
        if "persistentVolumeClaim" in v:
            problem(where, f"volume {v['name']} is a PersistentVolumeClaim: each replica's store is an emptyDir")

    # Identity and token.
    pod_name = [e for e in container.get("env", []) if e.get("name") == "POD_NAME"]
    if not pod_name or ((pod_name[0].get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") != "metadata.name":
        problem(where, "env POD_NAME must come from the downward API (fieldRef metadata.name): it is each replica's identity in the Lease")
    sa_name = pod.get("serviceAccountName")
    sa = next((o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == sa_name), {})
    mounted = pod.get("automountServiceAccountToken", sa.get("automountServiceAccountToken", True))
    if mounted is not True:
        problem(where, "the ServiceAccount's API token must be mounted (automountServiceAccountToken: true on the pod): the Lease and the checkpoint are written with it")

    # The config: [ha] in-cluster, and otherwise the base's.
    ha = config.get("ha") or {}
    if ha.get("coordinator") != "kubernetes":
        problem("sasrelay.toml", f"[ha] coordinator must be \"kubernetes\", found {ha.get('coordinator')!r}")
    for key in ("api_url", "namespace", "token_file"):
        if key in ha:
            problem("sasrelay.toml", f"[ha] {key}: the pods use the in-cluster API server, their own namespace and token")
    if "identity" in ha:
        problem("sasrelay.toml", "[ha] identity must be left out: both replicas share the file, and $POD_NAME tells them apart")
    lease = ha.get("name", "sasrelay")
    checkpoint = f"{lease}-checkpoint"
    try:
        base = tomllib.load(open(os.path.join(here, "sasrelay.toml"), "rb"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        problem("sasrelay.toml", f"the base's config cannot be read: {e}")
        base = None
    if base is not None:
        rest = {k: v for k, v in config.items() if k != "ha"}
        for key in sorted(set(rest) | set(base)):
            if rest.get(key) != base.get(key):
                problem("ha/sasrelay.toml", f"[{key}] differs from deploy/kubernetes/sasrelay.toml: the two must be the same apart from [ha]")

    # RBAC: exactly what sasrelay's calls need: GET and PUT on the named objects, POST on the
    # collections (a create names no object the authoriser could match).
    for o in objs:
        if o["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            problem(name(o), "nothing cluster-wide: the Lease and the ConfigMap are in the pod's namespace")
    role, binding = only(objs, "Role"), only(objs, "RoleBinding")
    wanted = {
        (LEASE_GROUP, "leases", "get", lease),
        (LEASE_GROUP, "leases", "update", lease),
        (LEASE_GROUP, "leases", "create", None),
        ("", "configmaps", "get", checkpoint),
        ("", "configmaps", "update", checkpoint),
        ("", "configmaps", "create", None),
    }
    show = lambda g: f"{g[0] or 'core'}/{g[1]} {g[2]}" + (f" {g[3]}" if g[3] else " (any name)")  # noqa: E731
    if role is not None:
        granted = set()
        for rule in role.get("rules", []):
            if rule.get("nonResourceURLs"):
                problem(name(role), "no nonResourceURLs")
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    for v in rule.get("verbs", []):
                        for n in rule.get("resourceNames") or [None]:
                            granted.add((g, r, v, n))
        for g in sorted(wanted - granted, key=str):
            problem(name(role), f"must grant {show(g)}")
        for g in sorted(granted - wanted, key=str):
            problem(name(role), f"grants {show(g)}, which sasrelay does not need (exactly get and update on {lease} and {checkpoint} by name, and create)")
        if role["metadata"].get("namespace") != namespace:
            problem(name(role), f"must be in the pod's namespace {namespace}")
    if binding is not None and role is not None:
        ref = binding.get("roleRef") or {}
        if (ref.get("apiGroup"), ref.get("kind"), ref.get("name")) != ("rbac.authorization.k8s.io", "Role", role["metadata"]["name"]):
            problem(name(binding), f"roleRef must be the Role {role['metadata']['name']}, not {ref}")
        subject = {"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}
        if binding.get("subjects") != [subject]:
            problem(name(binding), f"subjects must be exactly the pod's ServiceAccount {subject}, not {binding.get('subjects')}")
        if binding["metadata"].get("namespace") != namespace:
            problem(name(binding), f"must be in the pod's namespace {namespace}")

    # Disruptions: one at a time.
    pdb = only(objs, "PodDisruptionBudget")
    if pdb is not None:
        if pdb["spec"].get("maxUnavailable") != 1 or "minAvailable" in pdb["spec"]:
            problem(name(pdb), "must be maxUnavailable: 1 (and no minAvailable)")
        if not selects(pdb["spec"].get("selector"), labels):
            problem(name(pdb), "selector does not select the pods")

    # The API server: nothing may block egress to it.
    for np in (o for o in objs if o["kind"] == "NetworkPolicy"):
        if not selects(np["spec"].get("podSelector"), labels) and (np["spec"].get("podSelector") or {}) != {}:
            continue
        types = np["spec"].get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in np["spec"] else []))
        if "Egress" not in types:
            continue
        allowed = set()
        for rule in np["spec"].get("egress") or []:
            ports = rule.get("ports")
            if not ports:
                allowed |= set(API_PORTS)
            for p in ports or []:
                if p.get("protocol", "TCP") == "TCP" and isinstance(p.get("port"), int):
                    end = p.get("endPort", p["port"])
                    allowed |= {q for q in API_PORTS if p["port"] <= q <= end}
        for port in API_PORTS:
            if port not in allowed:
                problem(name(np), f"restricts egress without TCP {port}: the pods reach the API server through the kubernetes Service (443) at its endpoints (6443)")

    # The image: the base's (both kustomizations set it).
    images = []
    for k in (os.path.join(here, "kustomization.yaml"), os.path.join(here, "ha", "kustomization.yaml")):
        images.append((yaml.safe_load(open(k)) or {}).get("images"))
    if images[0] != images[1]:
        problem("ha/kustomization.yaml images", f"must be the base's {images[0]}, found {images[1]}")

    if len(PROBLEMS) == before:
        print(f"ha: {dep['spec'].get('replicas')} replicas, Lease {namespace}/{lease} and ConfigMap {namespace}/{checkpoint}; the Role grants {', '.join(show(g) for g in sorted(wanted, key=str))}")


def main():
    rendered, root, binary = sys.argv[1:4]
    variant = sys.argv[4] if len(sys.argv) > 4 else "base"
    if variant not in ("base", "ha"):
        print(f"validate.py: unknown variant {variant!r} (base or ha)", file=sys.stderr)
        return 2
    label = "deploy/kubernetes" + ("/ha" if variant == "ha" else "")
    here = os.path.dirname(os.path.abspath(__file__))
    versions = os.environ.get("SASRELAY_K8S_VERSIONS", "1.30.0 1.34.0").split()
    objs = [o for o in yaml.safe_load_all(open(rendered)) if o]
    for obj in objs:
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            validate_monitoring(obj)
        else:
            validate_builtin(obj, versions)
    print(f"schemas: {len(objs)} objects ({', '.join(sorted(name(o) for o in objs))}) against Kubernetes {', '.join(versions)} and the Prometheus Operator CRDs")
    found = check_deployment(objs, variant)
    if found is not None:
        health_port = check_config_against_pod(objs, found["dep"], found["pod"], found["container"], found["config"], variant)
        if variant == "ha":
            check_ha(objs, found, here)
        check_service_and_monitor(objs, found, health_port)
        check_image(found, root)
        check_ram(objs, found, here, root)
        check_config_with_binary(found, binary)
    check_alerts(objs, root)
    if PROBLEMS:
        print(f"\n{len(PROBLEMS)} problem(s) in {label}:", file=sys.stderr)
        for p in PROBLEMS:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{label}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
