#!/usr/bin/env bash
# Validate the Kubernetes manifests in deploy/k8s/ offline: every resource against the
# Kubernetes API's schemas in strict mode (a misspelled or misplaced field fails), with
# the schemas kubernetes-validate ships (no cluster, no network). Also checks that the
# kustomization lists exactly the manifests there, and that every pod's termination grace
# period exceeds the longest drain (the function timeout of its config, plus the drain's
# slack). With CLOUDBURST_BIN (a built binary), each node config file of the ConfigMap is
# also loaded by the node (`--dump-config`), so a misspelled key fails here too.
# Run by scripts/test.sh; scripts/setup.sh makes .venv-k8s.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Kubernetes release whose schemas the manifests must satisfy (the oldest we support).
K8S_VERSION=1.33.0
venv=.venv-k8s
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "validate-k8s: $venv is missing: run scripts/setup.sh" >&2
    exit 2
fi
mapfile -t files < <(find deploy/k8s -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
timeout 120 "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${files[@]}"
timeout 60 "$venv/bin/python3" - "${files[@]}" <<'PY'
import re, sys, yaml

# The drain of a node ends at the latest executor.function_timeout_ms plus this slack.
DRAIN_SLACK_S = 10
files = sys.argv[1:]
kust = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
listed = sorted("deploy/k8s/" + r for r in kust["resources"])
if listed != sorted(files):
    sys.exit(f"kustomization.yaml lists {listed}, the directory holds {sorted(files)}")
configs = {}
docs = [(f, d) for f in files for d in yaml.safe_load_all(open(f)) if d]
for f, d in docs:
    if d["kind"] == "ConfigMap":
        for name, text in d.get("data", {}).items():
            m = re.search(r"function_timeout_ms\s*=\s*(\d+)", text)
            configs[name] = int(m.group(1)) // 1000 if m else 30
checked = 0
for f, d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet"):
        continue
    spec = d["spec"]["template"]["spec"]
    grace = spec.get("terminationGracePeriodSeconds", 30)
    for c in spec["containers"]:
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        config = env.get("CLOUDBURST_CONFIG", "").rsplit("/", 1)[-1]
        if config not in configs:
            sys.exit(f"{f}: {d['metadata']['name']} reads config {config!r}, which no ConfigMap holds")
        need = configs[config] + DRAIN_SLACK_S
        if grace <= need:
            sys.exit(f"{f}: {d['metadata']['name']} terminationGracePeriodSeconds {grace} <= drain limit {need}")
        if "preStop" not in c.get("lifecycle", {}):
            sys.exit(f"{f}: {d['metadata']['name']} has no preStop drain")
        checked += 1
print(f"validate-k8s: {len(files)} manifests valid against the Kubernetes schemas (strict); {checked} pod templates drain within their grace period")
PY

if [ -n "${CLOUDBURST_BIN:-}" ]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    timeout 60 "$venv/bin/python3" - "$dir" deploy/k8s/configmap.yaml <<'PY'
import os, sys, yaml
out, path = sys.argv[1], sys.argv[2]
for d in yaml.safe_load_all(open(path)):
    for name, text in (d or {}).get("data", {}).items():
        if name.endswith(".toml"):
            open(os.path.join(out, name), "w").write(text)
PY
    for f in "$dir"/*.toml; do
        # A node loads its config with its secrets; the dump redacts them.
        if ! CLOUDBURST_CLUSTER_SECRET=x CLOUDBURST_TOKEN=x timeout 30 "$CLOUDBURST_BIN" node \
            --config "$f" --ephemeral --dump-config >/dev/null; then
            echo "validate-k8s: the nodes refuse deploy/k8s/configmap.yaml's $(basename "$f")" >&2
            exit 1
        fi
    done
    echo "validate-k8s: the nodes load every config file of the ConfigMap"
fi
