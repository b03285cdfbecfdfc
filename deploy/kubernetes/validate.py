"""Validates the rendered Kubernetes manifests of sasrelay offline (run by check.sh).

Every problem is reported, then the exit code is 1; 0 when there is none. What is checked:

1. Schemas. Every built-in object against the Kubernetes OpenAPI schemas that the PyPI package
   kubernetes-validate bundles, in strict mode (an unknown field is an error), for each version
   in SASRELAY_K8S_VERSIONS. ServiceMonitor and PrometheusRule against the pydantic models that
   cloudcoil-models-prometheus-operator generates from the Prometheus Operator's CRD schemas;
   pydantic drops unknown fields, so a field that does not survive the round trip is reported
   as unknown too.
2. The contract between the objects and sasrelay.toml: one replica, Recreate, the hardening
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

Usage: validate.py RENDERED.yaml REPO_ROOT SASRELAY_BINARY
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


def check_deployment(objs):
    dep = only(objs, "Deployment")
    if dep is None:
        return None
    spec = dep["spec"]
    if spec.get("replicas") != 1:
        problem(name(dep), "replicas must be 1: two pods would poll and deliver everything twice")
    if (spec.get("strategy") or {}).get("type") != "Recreate":
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
    return {"dep": dep, "pod": pod, "container": container, "config": config, "text": text}


def check_config_against_pod(objs, dep, pod, container, config):
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
    claims = {
        v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v
    }
    if not any(
        m["mountPath"].rstrip("/") == str(state_dir).rstrip("/") and m["name"] in claims
        for m in container.get("volumeMounts", [])
    ):
        problem(where, f"[state] directory {state_dir} must be a PersistentVolumeClaim mount")
    provided = {e["name"] for e in container.get("env", [])}
    for var in sorted(set(env_refs(config))):
        if var not in provided:
            problem(where, f"sasrelay.toml reads {{ env = \"{var}\" }}, which the container does not set")
    for e in container.get("env", []):
        if "value" in e and re.search(r"(SECRET|TOKEN|PASSWORD|URL|KEY)", e["name"]):
            problem(where, f"env {e['name']} must come from a Secret (valueFrom.secretKeyRef), not a literal")
    grace = duration_seconds((config.get("daemon") or {}).get("shutdown_grace", "10s"))
    period = pod.get("terminationGracePeriodSeconds", 30)
    if period < grace + 10:
        problem(where, f"terminationGracePeriodSeconds {period} must be at least [daemon] shutdown_grace ({grace:g}s) + 10s for the final flush")
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


def called_actions(root):
    """Security Center actions named as string literals in src/sas/ outside its tests."""
    actions = set()
    sas = os.path.join(root, "src", "sas")
    for file in sorted(os.listdir(sas)):
        if file.endswith(".rs"):
            code = open(os.path.join(sas, file), encoding="utf-8").read().split("#[cfg(test)]")[0]
            code = "\n".join(line.split("//")[0] for line in code.splitlines())
            actions |= set(ACTION.findall(code))
    return actions


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


def main():
    rendered, root, binary = sys.argv[1:4]
    here = os.path.dirname(os.path.abspath(__file__))
    versions = os.environ.get("SASRELAY_K8S_VERSIONS", "1.30.0 1.34.0").split()
    objs = [o for o in yaml.safe_load_all(open(rendered)) if o]
    for obj in objs:
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            validate_monitoring(obj)
        else:
            validate_builtin(obj, versions)
    print(f"schemas: {len(objs)} objects ({', '.join(sorted(name(o) for o in objs))}) against Kubernetes {', '.join(versions)} and the Prometheus Operator CRDs")
    found = check_deployment(objs)
    if found is not None:
        health_port = check_config_against_pod(objs, found["dep"], found["pod"], found["container"], found["config"])
        check_service_and_monitor(objs, found, health_port)
        check_image(found, root)
        check_ram(objs, found, here, root)
        check_config_with_binary(found, binary)
    check_alerts(objs, root)
    if PROBLEMS:
        print(f"\n{len(PROBLEMS)} problem(s) in deploy/kubernetes:", file=sys.stderr)
        for p in PROBLEMS:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("deploy/kubernetes: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
