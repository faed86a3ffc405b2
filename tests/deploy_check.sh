#!/usr/bin/env bash
# The deploy files, checked by the tools that consume them:
#   compose.yaml          docker-compose 1.29 (`config`), with and without the monitoring profile;
#                         refuses to start without SECRET_KEY; health checks, start order, profiles
#   deploy/prometheus/    promtool check config / check rules / test rules
#   deploy/grafana/       the dashboard parses and uses only names in deploy/metric-names.txt
#   Dockerfile            static checks (no Docker daemon in the test environment)
#   runtime packages      with BINARY: every library it links belongs to a Debian package, which
#                         is what the image's runtime stage installs
#
# usage: deploy_check.sh SOURCE_DIR [BINARY]
# A missing tool is a failure, not a skip: these checks are the only ones the deploy files get.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 SOURCE_DIR [BINARY]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
binary=${2:-}

failures=0
fail() {
  echo "deploy_check: FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() { echo "deploy_check: ok: $*"; }

missing_tools=()
for tool in docker-compose promtool python3; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import yaml' 2>/dev/null; then
  missing_tools+=("python3-yaml")
fi
if [ ${#missing_tools[@]} -gt 0 ]; then
  echo "deploy_check: FAIL: missing ${missing_tools[*]} (scripts/install-deps.sh installs them)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ------------------------------------------------------------------ compose
# Hermetic: no variables from the caller's shell and no .env from the checkout, only the
# example file (with a dummy key where the real one must be set by the operator).
compose() {
  env -i PATH="$PATH" HOME="$work" docker-compose --project-directory "$src" \
    -f "$src/compose.yaml" "$@"
}
cp "$src/.env.example" "$work/example.env"
sed -e 's/^SECRET_KEY=.*/SECRET_KEY=0123456789abcdef0123456789abcdef-dummy/' \
  "$src/.env.example" >"$work/ok.env"

if compose --env-file "$work/ok.env" config -q 2>"$work/compose.err"; then
  pass "compose.yaml is valid for docker-compose $(docker-compose version --short 2>/dev/null)"
else
  fail "docker-compose config rejects compose.yaml: $(cat "$work/compose.err")"
fi
if compose --env-file "$work/ok.env" --profile monitoring config >"$work/resolved.yaml" \
  2>"$work/compose.err"; then
  pass "compose.yaml is valid with --profile monitoring"
else
  fail "docker-compose --profile monitoring config: $(cat "$work/compose.err")"
fi
# .env.example leaves SECRET_KEY empty on purpose: compose must refuse until one is set.
if compose --env-file "$work/example.env" config -q 2>"$work/compose.err"; then
  fail "compose.yaml starts without SECRET_KEY"
elif grep -q "SECRET_KEY" "$work/compose.err"; then
  pass "compose refuses to start without SECRET_KEY"
else
  fail "compose fails without SECRET_KEY, but not naming it: $(cat "$work/compose.err")"
fi

# ------------------------------------------------------------------ promtool
prom="$src/deploy/prometheus"
if promtool check config "$prom/prometheus.yml" >"$work/promtool.out" 2>&1; then
  pass "promtool check config prometheus.yml"
else
  fail "promtool check config: $(cat "$work/promtool.out")"
fi
if promtool check rules "$prom/alerts.yml" >"$work/promtool.out" 2>&1; then
  pass "promtool check rules alerts.yml"
else
  fail "promtool check rules: $(cat "$work/promtool.out")"
fi
# promtool resolves rule_files relative to the working directory.
if (cd "$prom" && promtool test rules alerts_test.yml) >"$work/promtool.out" 2>&1; then
  pass "promtool test rules alerts_test.yml"
else
  fail "promtool test rules: $(cat "$work/promtool.out")"
fi

# ------------------------------------------------------------------ runtime packages
if [ -n "$binary" ]; then
  if "$src/deploy/docker/runtime-packages.sh" "$binary" >"$work/packages.txt" 2>"$work/packages.err" \
    && [ -s "$work/packages.txt" ]; then
    pass "every library of $(basename "$binary") is in a Debian package ($(wc -l <"$work/packages.txt") packages)"
  else
    fail "runtime-packages.sh: $(cat "$work/packages.err")"
  fi
fi

# ------------------------------------------------------------------ structure
# What the tools above do not know: this project's rules for its own files.
if python3 - "$src" "$work/resolved.yaml" <<'PYTHON'; then
import json
import os
import re
import shlex
import sys

import yaml

src, resolved_path = sys.argv[1], sys.argv[2]
problems = []


def problem(message):
    problems.append(message)


def ok(message):
    print(f"deploy_check: ok: {message}")


# ---------------------------------------------------------------- metric names
# PromQL identifiers that are not metric names; everything else not followed by "(" is one.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "le",
}
# Series Prometheus makes itself.
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}


def metric_names_in(expr):
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables: $route, ${datasource}
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][\w:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


# The extractor guards everything below: prove it finds names and only names.
sample = ('histogram_quantile(0.99, sum by (le, route) (rate(foo_seconds_bucket{code=~"5..", '
          'route=~"$route", x="a b"}[$__rate_interval]))) / on (job) group_left bar_total '
          'offset 5m > 1e3 and count(baz) by (job)')
found = metric_names_in(sample)
if found != {"foo_seconds_bucket", "bar_total", "baz"}:
    problem(f"metric name extractor self-test: got {sorted(found)}")

contract = {}
with open(os.path.join(src, "deploy/metric-names.txt")) as f:
    for number, line in enumerate(f, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (3, 4) or fields[1] not in ("counter", "gauge", "histogram") \
                or fields[2] not in ("api", "worker", "every") \
                or (len(fields) == 4 and fields[3] not in ("redis", "marian")):
            problem(f"deploy/metric-names.txt:{number}: "
                    "expected 'name type api|worker|every [redis|marian]'")
            continue
        contract[fields[0]] = fields[1]


def known(name):
    if name in contract or name in BUILTIN_SERIES:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and contract.get(name[: -len(suffix)]) == "histogram":
            return True
    return False


# ---------------------------------------------------------------- dashboard
section_start = len(problems)
dashboard_path = os.path.join(src, "deploy/grafana/transnotes-dashboard.json")
try:
    with open(dashboard_path) as f:
        dashboard = json.load(f)
except (OSError, ValueError) as e:
    problem(f"dashboard: {e}")
    dashboard = {"panels": []}


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


expressions = []
panel_ids = []
for panel in all_panels(dashboard.get("panels", [])):
    panel_ids.append(panel.get("id"))
    if panel.get("type") == "row":
        continue
    targets = panel.get("targets") or []
    if not targets:
        problem(f"dashboard panel '{panel.get('title')}' has no query")
    if not panel.get("datasource"):
        problem(f"dashboard panel '{panel.get('title')}' names no data source")
    for t in targets:
        if not t.get("expr"):
            problem(f"dashboard panel '{panel.get('title')}' has a query without expr")
        expressions.append((panel.get("title"), t.get("expr", "")))
for variable in dashboard.get("templating", {}).get("list", []):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    if variable.get("type") == "query" and isinstance(query, str):
        # label_values(SELECTOR, label): only the selector is PromQL.
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        expressions.append((f"variable {variable.get('name')}", m.group(1) if m else query))
if len(panel_ids) != len(set(panel_ids)):
    problem("dashboard panel ids are not unique")

used = set()
for title, expr in expressions:
    names = metric_names_in(expr)
    used |= names
    for name in sorted(names):
        if not known(name):
            problem(f"dashboard '{title}' uses {name}, which is not in deploy/metric-names.txt")
all_exprs = "\n".join(e for _, e in expressions)
for required in ("http_requests_total", "http_request_duration_seconds_bucket",
                 "transnotes_queue_depth", "transnotes_queue_oldest_age_seconds",
                 "transnotes_translation_attempts_total",
                 "transnotes_translation_duration_seconds_bucket",
                 "transnotes_cache_lookups_total", "process_resident_memory_bytes"):
    if required not in used:
        problem(f"dashboard shows nothing from {required}")
for histogram in ("http_request_duration_seconds_bucket",
                  "transnotes_translation_duration_seconds_bucket"):
    for q in ("0.5", "0.95", "0.99"):
        if not re.search(rf"histogram_quantile\({re.escape(q)},[^\n]*{histogram}", all_exprs):
            problem(f"dashboard has no p{q} of {histogram}")
if len(problems) == section_start:
    ok(f"dashboard: {len(expressions)} queries, every metric name in deploy/metric-names.txt")

# ---------------------------------------------------------------- alerts
section_start = len(problems)
with open(os.path.join(src, "deploy/prometheus/alerts.yml")) as f:
    rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
with open(os.path.join(src, "deploy/prometheus/alerts_test.yml")) as f:
    unit_tests = yaml.safe_load(f)["tests"]
with open(os.path.join(src, "docs/deployment.md")) as f:
    deployment_md = f.read()
anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+\s+(.*)$", deployment_md, flags=re.M)}
firing, quiet = set(), set()
for test in unit_tests:
    for case in test.get("alert_rule_test", []):
        (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
for rule in rules:
    name = rule.get("alert")
    if not name:
        continue
    for name_used in sorted(metric_names_in(rule["expr"])):
        if not known(name_used):
            problem(f"alert {name} uses {name_used}, which is not in deploy/metric-names.txt")
    if not rule.get("for"):
        problem(f"alert {name} has no for:")
    if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
        problem(f"alert {name}: severity must be critical or warning")
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook"):
        if not annotations.get(key):
            problem(f"alert {name} has no {key} annotation")
    anchor = annotations.get("runbook", "").partition("#")[2]
    if anchor not in anchors:
        problem(f"alert {name}: docs/deployment.md has no heading for #{anchor}")
    if name not in firing:
        problem(f"alerts_test.yml never shows {name} firing")
    if name not in quiet:
        problem(f"alerts_test.yml never shows {name} staying quiet")
if len(problems) == section_start:
    ok(f"alerts: {sum(1 for r in rules if r.get('alert'))} rules, each tested firing and quiet, "
       "each with a runbook section")

# ---------------------------------------------------------------- compose structure
section_start = len(problems)
with open(resolved_path) as f:
    resolved = yaml.safe_load(f) or {}
services = resolved.get("services", {})
expected = {"db", "redis", "migrate", "api", "worker", "prometheus", "grafana"}
if set(services) != expected:
    problem(f"compose services are {sorted(services)}, expected {sorted(expected)}")
transnotes_services = [s for s, c in services.items()
                       if str(c.get("image", "")).startswith("transnotes") or "build" in c]
for name, service in services.items():
    check = service.get("healthcheck", {})
    # docker-compose 1.29 writes `disable: true` as `test: [NONE]`.
    disabled = bool(check.get("disable")) or check.get("test") in (["NONE"], "NONE")
    if name == "migrate":
        if not disabled:
            problem("migrate is a one-shot: its health check should be disabled")
        if service.get("command") != ["migrate"] or service.get("restart") != "no":
            problem("migrate must run `migrate` once (restart: \"no\")")
        continue
    if disabled or not check.get("test"):
        problem(f"compose service {name} has no health check")
        continue
    if name in transnotes_services and not any("/readyz" in str(t) for t in check["test"]):
        problem(f"compose service {name}: the health check must ask /readyz")
for name in ("api", "worker"):
    depends = services.get(name, {}).get("depends_on", {})
    wanted = {"migrate": "service_completed_successfully", "db": "service_healthy",
              "redis": "service_healthy"}
    for dependency, condition in wanted.items():
        if depends.get(dependency, {}).get("condition") != condition:
            problem(f"{name} must depend on {dependency} with condition {condition}")
    if services.get(name, {}).get("profiles"):
        problem(f"{name} must not be behind a profile")
if services.get("migrate", {}).get("depends_on", {}).get("db", {}).get("condition") \
        != "service_healthy":
    problem("migrate must wait for a healthy db")
for name in ("prometheus", "grafana"):
    if services.get(name, {}).get("profiles") != ["monitoring"]:
        problem(f"{name} must be behind `profiles: [monitoring]`")
for name, service in services.items():
    if name != "api" and "SECRET_KEY" in (service.get("environment") or {}):
        problem(f"{name} gets SECRET_KEY, which only the API uses")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("/") and not os.path.exists(source):
            problem(f"{name} mounts {source}, which does not exist")

# The scrape config must reach what compose runs: same service names and ports.
with open(os.path.join(src, "deploy/prometheus/prometheus.yml")) as f:
    prometheus = yaml.safe_load(f)


def serve_port(service):
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    return int(command[command.index("--port") + 1]) if "--port" in command else 8000


health_ports = {}
for name in ("api", "worker"):
    test = " ".join(str(t) for t in services.get(name, {}).get("healthcheck", {}).get("test", []))
    m = re.search(r"127\.0\.0\.1:(\d+)/readyz", test)
    health_ports[name] = int(m.group(1)) if m else None
metrics_env = (services.get("worker", {}).get("environment") or {}).get("TRANSNOTES_METRICS_PORT")
if health_ports.get("worker") is None or str(health_ports["worker"]) != str(metrics_env):
    problem(f"worker: health check port {health_ports.get('worker')} is not "
            f"TRANSNOTES_METRICS_PORT {metrics_env}")
if health_ports.get("api") != serve_port(services.get("api", {})):
    problem("api: the health check port is not the port serve listens on")
scraped = {}
for job in prometheus.get("scrape_configs", []):
    for sd in job.get("dns_sd_configs", []):
        for host in sd.get("names", []):
            scraped[host] = sd.get("port")
for name in ("api", "worker"):
    if scraped.get(name) != health_ports.get(name):
        problem(f"prometheus.yml scrapes {name} on port {scraped.get(name)}, "
                f"but it serves on {health_ports.get(name)}")

# Grafana provisioning points at the compose stack's Prometheus and at the mounted dashboard.
provisioning = os.path.join(src, "deploy/grafana/provisioning")
with open(os.path.join(provisioning, "datasources/prometheus.yml")) as f:
    datasources = yaml.safe_load(f)["datasources"]
if not any(d.get("url") == "http://prometheus:9090" for d in datasources):
    problem("Grafana's data source is not the compose stack's prometheus:9090")
with open(os.path.join(provisioning, "dashboards/transnotes.yml")) as f:
    provider_paths = [p["options"]["path"] for p in yaml.safe_load(f)["providers"]]
grafana_mounts = [v.split(":")[1] for v in services.get("grafana", {}).get("volumes", [])
                  if isinstance(v, str) and v.split(":")[0].endswith("transnotes-dashboard.json")]
if not any(os.path.dirname(m) in provider_paths for m in grafana_mounts):
    problem("the dashboard is not mounted where Grafana's dashboard provider looks")
if len(problems) == section_start:
    ok("compose: health checks ask /readyz, migrate runs first, monitoring behind its profile, "
       "scrape ports match")

# ---------------------------------------------------------------- Dockerfile
section_start = len(problems)
with open(os.path.join(src, "Dockerfile")) as f:
    raw = f.read()
logical = re.sub(r"\\\n", " ", raw)
instructions = []
for line in logical.splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
stages, current = [], None
for keyword, rest in instructions:
    if keyword == "FROM":
        current = []
        stages.append(current)
    if current is not None:
        current.append((keyword, rest))
if not stages:
    problem("Dockerfile has no FROM")
    stages = [[]]
final = stages[-1]


def last(stage, keyword):
    values = [rest for k, rest in stage if k == keyword]
    return values[-1] if values else None


def exec_form(value):
    try:
        parsed = json.loads(value) if value else None
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, list) else None


user = last(final, "USER")
if not user or user.split(":")[0] in ("root", "0"):
    problem(f"the image must run as a non-root USER (final stage USER is {user!r})")
entrypoint = exec_form(last(final, "ENTRYPOINT"))
cmd = exec_form(last(final, "CMD"))
if not entrypoint or not any(part.endswith("/transnotes") for part in entrypoint):
    problem("ENTRYPOINT must be the transnotes binary, in exec form")
if not cmd or cmd[0] != "serve":
    problem("CMD must be `serve` so `docker run IMAGE` starts the embedded default")
healthcheck = last(final, "HEALTHCHECK")
if not healthcheck or "/readyz" not in healthcheck:
    problem("the HEALTHCHECK must ask /readyz")
env_text = " ".join(rest for k, rest in final if k == "ENV")
for setting in ("TRANSNOTES_HOST=0.0.0.0", "TRANSNOTES_DATA_DIR=/data"):
    if setting not in env_text:
        problem(f"the image must set {setting}")
volumes = " ".join(rest for k, rest in final if k == "VOLUME")
if "/data" not in volumes:
    problem("the image must declare /data a VOLUME")
copies_install = any(k == "COPY" and "scripts/install-deps.sh" in rest
                     for stage in stages for k, rest in stage)
runs_install = any(k == "RUN" and "install-deps.sh" in rest for stage in stages for k, rest in stage)
if not (copies_install and runs_install):
    problem("the build stage must install packages with scripts/install-deps.sh (README's way)")
if not any(k == "RUN" and "runtime-packages.sh" in rest for stage in stages for k, rest in stage):
    problem("the build stage must list the runtime packages with deploy/docker/runtime-packages.sh")
with open(os.path.join(src, ".dockerignore")) as f:
    ignored = [line.strip() for line in f if line.strip() and not line.startswith("#")]
for needed in ("scripts", "scripts/install-deps.sh", "deploy", "deploy/docker"):
    if needed in ignored or needed + "/" in ignored:
        problem(f".dockerignore leaves {needed} out of the build context")
if len(problems) == section_start:
    ok("Dockerfile: non-root USER, ENTRYPOINT transnotes + CMD serve, HEALTHCHECK /readyz, "
       "install-deps.sh in the build stage")

for message in problems:
    print(f"deploy_check: FAIL: {message}", file=sys.stderr)
sys.exit(1 if problems else 0)
PYTHON
  :
else
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  echo "deploy_check: $failures check(s) failed" >&2
  exit 1
fi
echo "deploy_check: all checks passed"
