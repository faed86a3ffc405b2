#!/usr/bin/env bash
# Checks that docs/openapi.yaml documents every route (path + method) that src/api/api.cpp
# implements (its route table), and documents no route the code lacks. bash + python3 standard library only;
# PyYAML is used for deeper checks when present, never required.
#
# Usage: tests/openapi_check.sh [SOURCE_DIR]   (default: the repository holding this script)
# Exit 0: in sync. Exit 1: a difference (listed). Exit 2: the route table could not be read
# (api.cpp changed its route table's layout: update the extractor below together with the code).
set -euo pipefail

SOURCE_DIR="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
API_CPP="$SOURCE_DIR/src/api/api.cpp"
SPEC="$SOURCE_DIR/docs/openapi.yaml"
[ -f "$API_CPP" ] || { echo "openapi_check: missing $API_CPP" >&2; exit 2; }
[ -f "$SPEC" ] || { echo "openapi_check: missing $SPEC" >&2; exit 2; }

exec python3 - "$API_CPP" "$SPEC" <<'PY'
import re
import sys

api_cpp, spec_path = sys.argv[1], sys.argv[2]
code = open(api_cpp, encoding="utf-8").read()
spec_text = open(spec_path, encoding="utf-8").read()


def fail_extract(message):
    print(f"openapi_check: cannot read routes from {api_cpp}: {message}", file=sys.stderr)
    sys.exit(2)


def normalize(path):
    """Compare paths ignoring placeholder names and a trailing slash."""
    path = re.sub(r"\{[^}]*\}", "{}", path)
    return path.rstrip("/") or "/"


# ---- routes implemented in api.cpp -------------------------------------------------------
# The route table (Api::make_router) holds one route a line:
#   {"/api/v1/notes/{id}/", "Note Instance", {{"GET", on(&Api::retrieve_note)}, {"PUT", ...}}},
# Routing, 405/Allow, HEAD and OPTIONS all derive from it, so it is the whole surface.
table_match = re.search(r"Api::make_router\(.*?\n\}\n", code, re.S)
if not table_match:
    fail_extract("Api::make_router (the route table) not found")
implemented = {}  # normalized path -> set of methods
for line in table_match.group(0).splitlines():
    m = re.match(r'\s*\{"(/[^"]*)",\s*"[^"]*",\s*\{(.*)\}\},?\s*$', line)
    if not m:
        continue
    methods = set(re.findall(r'\{"([A-Z]+)",', m.group(2)))
    if not methods:
        fail_extract(f"route without methods: {line.strip()}")
    implemented.setdefault(normalize(m.group(1)), set()).update(methods)

if len(implemented) < 3:
    fail_extract(f"only {len(implemented)} routes found; the routing idiom probably changed")

# Served in Api::route before the table is asked (a placeholder the router's {id} cannot express):
# implemented while api.cpp still calls what serves them.
BEFORE_THE_TABLE = {
    "/api/v1/docs/{}": ("GET", "apidocs::docs_asset("),
    "/": ("GET", "webapp::webapp_asset("),
    "/static/{}": ("GET", "webapp::webapp_asset("),
}
for path, (method, call) in BEFORE_THE_TABLE.items():
    if call in code:
        implemented.setdefault(path, set()).add(method)

# ---- routes documented in openapi.yaml ----------------------------------------------------
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
documented = {}
problems = []
try:
    import yaml  # optional
except ImportError:
    yaml = None

if yaml is not None:
    spec = yaml.safe_load(spec_text)
    if not str(spec.get("openapi", "")).startswith("3.1."):
        problems.append("openapi version is not 3.1.x")
    for path, item in (spec.get("paths") or {}).items():
        ops = {k.upper() for k in item if k in HTTP_METHODS}
        documented.setdefault(normalize(path), set()).update(ops)
        for method, op in item.items():
            if method in HTTP_METHODS and not op.get("responses"):
                problems.append(f"{method.upper()} {path}: no responses")
    components = spec.get("components") or {}
    try:  # the OpenAPI 3.1 schema itself, where the validator is installed (optional, like PyYAML)
        from openapi_spec_validator import validate as validate_openapi
    except ImportError:
        validate_openapi = None
    if validate_openapi is not None:
        try:
            validate_openapi(spec)
        except Exception as error:  # the library's error types moved between versions
            problems.append(f"not a valid OpenAPI document: {str(error).splitlines()[0]}")
else:
    # Block-style YAML as written in docs/openapi.yaml: path keys at two spaces under `paths:`,
    # operation keys at four spaces.
    in_paths = False
    current = None
    for line in spec_text.splitlines():
        if re.match(r"^\S", line):
            in_paths = line.startswith("paths:")
            current = None
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (['\"]?)(/[^'\":]*)\1:\s*$", line)
        if m:
            current = normalize(m.group(2))
            documented.setdefault(current, set())
            continue
        m = re.match(r"^    ([a-z]+):", line)
        if m and current and m.group(1) in HTTP_METHODS:
            documented[current].add(m.group(1).upper())
    components = None

# OpenAPI 3.1 schemas are JSON Schema 2020-12, which has no `nullable` (a null is `type: [..., 'null']`):
# a leftover from 3.0 would silently make a nullable field non-nullable for validators.
for number, line in enumerate(spec_text.splitlines(), 1):
    if re.match(r"^\s*nullable:", line):
        problems.append(f"line {number}: `nullable` is not OpenAPI 3.1; use type: [..., 'null']")

# Every $ref must point at something defined.
for ref in sorted(set(re.findall(r"\$ref:\s*['\"]?#/components/(\w+)/([\w.-]+)", spec_text))):
    section, name = ref
    if components is not None:
        defined = name in (components.get(section) or {})
    else:
        block = re.search(rf"^  {section}:\n((?:    .*\n|\s*\n)*)", spec_text, re.M)
        defined = bool(block and re.search(rf"^    {re.escape(name)}:", block.group(1), re.M))
    if not defined:
        problems.append(f"$ref #/components/{section}/{name} is not defined")

# ---- compare ---------------------------------------------------------------------------
for path in sorted(implemented):
    if path not in documented:
        problems.append(f"route {path}/ ({', '.join(sorted(implemented[path]))}) is not documented")
        continue
    for method in sorted(implemented[path] - documented[path]):
        problems.append(f"{method} {path}/ is implemented but not documented")
for path in sorted(documented):
    if path not in implemented:
        problems.append(f"documented path {path}/ is not implemented in api.cpp")
        continue
    extra = documented[path] - implemented[path] - {"HEAD", "OPTIONS"}
    for method in sorted(extra):
        problems.append(f"{method} {path}/ is documented but not implemented")

mode = "PyYAML" if yaml is not None else "stdlib parser"
if yaml is not None and validate_openapi is not None:
    mode += " + openapi-spec-validator"
if problems:
    for p in problems:
        print(f"openapi_check: {p}")
    print(f"openapi_check: FAILED ({len(problems)} problems, {mode})")
    sys.exit(1)
total = sum(len(m) for m in implemented.values())
print(f"openapi_check: OK, {len(implemented)} paths / {total} operations documented ({mode})")
PY
