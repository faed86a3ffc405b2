#!/usr/bin/env python3
"""Validates every response the e2e suite received against docs/openapi.yaml.

The e2e harness (tests/e2e/harness.cpp) appends each HTTP exchange, and the name of each test that
starts, to the file named by TRANSNOTES_E2E_EXCHANGE_LOG. ctest removes that file before the suite
(e2e_exchanges_reset) and runs this check after it (tests/CMakeLists.txt). For each exchange:

  * the path is matched to a path template of the document (an unknown path must answer the
    documented 404), the method to an operation (HEAD to GET; a method the path lacks must answer
    the documented 405);
  * the status must be documented for that operation (exactly, or as `4XX`; `default`, which this
    document uses for unexpected server errors, only for a 5xx);
  * the response's media type must be one the document lists for it (none: the body is empty);
  * a JSON body must validate against that media type's schema (JSON Schema 2020-12, refs into
    #/components resolved), with no field the schema does not name (object schemas listing
    their properties are taken as closed);
  * the headers the response documents must match their schemas, and be there when `required`
    (X-Request-ID on every response).

It cannot pass vacuously: it fails without exchanges, and when the whole suite ran (every test
`E2E_BINARY --gtest_list_tests` names started) it also fails below --min-exchanges exchanges or
when fewer than --min-coverage of the documented operations were exercised.

Usage: response_schema_check.py OPENAPI.yaml EXCHANGE_LOG E2E_BINARY [--min-exchanges N]
       [--min-coverage FRACTION]
Exit 0: every response matches. Exit 1: mismatches (listed) or too little was recorded.
"""
import argparse
import collections
import json
import re
import subprocess
import sys

import jsonschema
import yaml

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Statuses the HTTP layer answers before routing, whatever the path (bad framing, body too big).
BEFORE_ROUTING = {"400": "BadRequest", "413": "PayloadTooLarge"}


def load_document(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(document, node):
    """Follows a local $ref (response objects, parameters) to what it names."""
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


class PathMatcher:
    """Document path templates as patterns. `{x}` matches one segment (digits when the parameter
    is an integer, as the router's id converter); the trailing slash is optional, as in the
    service."""

    def __init__(self, document):
        self.templates = []
        for template, item in document["paths"].items():
            integer_params = set()
            parameters = list(item.get("parameters", []))
            for method in HTTP_METHODS:
                parameters += (item.get(method) or {}).get("parameters", [])
            for parameter in parameters:
                parameter = resolve(document, parameter)
                if parameter.get("in") == "path" and parameter.get("schema", {}).get("type") == "integer":
                    integer_params.add(parameter["name"])
            pattern = ""
            for piece in re.split(r"(\{[^}]+\})", template.rstrip("/")):
                if piece.startswith("{"):
                    pattern += "[0-9]+" if piece[1:-1] in integer_params else "[^/]+"
                else:
                    pattern += re.escape(piece)
            literal = "{" not in template
            self.templates.append((not literal, re.compile(pattern + "/?$"), template))
        self.templates.sort(key=lambda entry: entry[0])  # literal paths win over templates

    def match(self, path):
        for _, pattern, template in self.templates:
            if pattern.match(path):
                return template
        return None


def closed(node):
    """A copy in which every object schema that lists its properties allows no others, unless it
    says otherwise: a field the document does not name is a mismatch too."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: closed(value) for key, value in node.items()}
    if copy.get("type") == "object" and "properties" in copy and "additionalProperties" not in copy:
        copy["additionalProperties"] = False
    return copy


class Checker:
    def __init__(self, document):
        self.document = document
        self.components = dict(document.get("components", {}))
        self.components["schemas"] = closed(self.components.get("schemas", {}))
        self.paths = PathMatcher(document)
        self.validators = {}

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        if key not in self.validators:
            # The schema as the root of a resource that also holds the document's components, so
            # "#/components/schemas/..." resolves the same way in every jsonschema version.
            root = dict(schema)
            root["components"] = self.components
            self.validators[key] = jsonschema.Draft202012Validator(root)
        return self.validators[key]

    def response_for(self, operation, status):
        responses = operation.get("responses", {})
        # This document's `default` is the unexpected server error; a 4xx it does not list by
        # number is a contract gap, not "default".
        keys = (str(status), f"{status // 100}XX") + (("default",) if status >= 500 else ())
        for key in keys:
            if key in responses:
                return key, resolve(self.document, responses[key])
        return None, None

    def check(self, exchange):
        """Returns (operation key or None, list of problems) for one recorded exchange."""
        method = exchange["method"].upper()
        path = exchange["target"].split("?", 1)[0]
        status = exchange["status"]
        template = self.paths.match(path)
        label = f"{method} {exchange['target']} -> {status} (test {exchange.get('test') or '?'})"

        if template is None:
            if status == 404:
                return None, self.check_body(exchange, self.components["responses"]["NotFound"], label)
            if str(status) in BEFORE_ROUTING:
                name = BEFORE_ROUTING[str(status)]
                return None, self.check_body(exchange, self.components["responses"][name], label)
            return None, [f"{label}: the path matches no documented path"]

        item = self.document["paths"][template]
        lookup = "get" if method == "HEAD" else method.lower()
        operation = item.get(lookup)
        if operation is None:
            if status == 405:
                return None, self.check_body(exchange, self.components["responses"]["MethodNotAllowed"], label)
            if str(status) in BEFORE_ROUTING:
                name = BEFORE_ROUTING[str(status)]
                return None, self.check_body(exchange, self.components["responses"][name], label)
            return None, [f"{label}: {method} is not documented for {template}"]

        key, response = self.response_for(operation, status)
        operation_key = f"{lookup.upper()} {template}"
        if response is None:
            documented = ", ".join(operation.get("responses", {}))
            return operation_key, [f"{label}: status {status} is not documented for {operation_key} "
                                   f"(documented: {documented})"]
        return operation_key, self.check_body(exchange, response, label)

    def check_headers(self, exchange, response, label):
        """Headers the response documents: present when `required`, and matching their schema."""
        if "headers" not in exchange:
            return []
        received = {name.lower(): value for name, value in exchange["headers"].items()}
        problems = []
        for name, header in (response.get("headers") or {}).items():
            header = resolve(self.document, header)
            value = received.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"{label}: the required header {name} is missing")
                continue
            schema = header.get("schema") or {}
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    problems.append(f"{label}: header {name}: {value!r} is not an integer")
                    continue
            for error in list(self.validator(schema).iter_errors(value))[:1]:
                problems.append(f"{label}: header {name}: {error.message}")
        return problems

    def check_body(self, exchange, response, label):
        header_problems = self.check_headers(exchange, response, label)
        return header_problems + self.check_content(exchange, response, label)

    def check_content(self, exchange, response, label):
        if exchange["method"].upper() == "HEAD":
            return []  # no body on the wire
        content = response.get("content") or {}
        received_type = exchange.get("content_type", "").split(";", 1)[0].strip().lower()
        if not content:
            if exchange.get("body_size", 0) != 0:
                return [f"{label}: documented without a body, but {exchange['body_size']} bytes "
                        f"of {received_type or 'no type'} came"]
            return []
        media = {key.split(";", 1)[0].strip().lower(): value for key, value in content.items()}
        if received_type not in media:
            return [f"{label}: Content-Type {received_type or '(none)'} is not documented "
                    f"(documented: {', '.join(media)})"]
        schema = (media[received_type] or {}).get("schema")
        if schema is None or "json" not in received_type:
            return []
        if "body" not in exchange:
            return []  # too large to record
        try:
            body = json.loads(exchange["body"])
        except json.JSONDecodeError as error:
            return [f"{label}: the body is not JSON ({error}): {exchange['body'][:200]!r}"]
        errors = sorted(self.validator(closed(schema)).iter_errors(body), key=lambda e: list(e.absolute_path))
        return [f"{label}: body does not match the schema at /{'/'.join(map(str, e.absolute_path))}: "
                + (e.message if len(e.message) < 300 else f"fails {e.validator}: {e.validator_value!r}")
                for e in errors[:3]]


def listed_tests(binary):
    output = subprocess.run([binary, "--gtest_list_tests"], check=True, capture_output=True,
                            text=True, timeout=120).stdout
    tests, suite = set(), None
    for line in output.splitlines():
        if not line.strip() or line.startswith("Running main()"):
            continue
        if not line.startswith(" "):
            suite = line.split("#", 1)[0].strip()
        else:
            name = line.split("#", 1)[0].strip()
            if "DISABLED_" not in suite + name:
                tests.add(suite + name)
    return tests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("document")
    parser.add_argument("exchange_log")
    parser.add_argument("e2e_binary")
    parser.add_argument("--min-exchanges", type=int, default=2000)
    parser.add_argument("--min-coverage", type=float, default=0.85)
    args = parser.parse_args()

    checker = Checker(load_document(args.document))
    started, exchanges = set(), 0
    problems = []
    seen_problems = set()
    operations_hit = collections.Counter()
    try:
        # Streamed: the log of a whole suite holds tens of megabytes of bodies.
        with open(args.exchange_log, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                record = json.loads(line)
                if record.get("kind") == "test":
                    started.add(record["test"])
                    continue
                if record.get("kind") != "exchange":
                    sys.exit(f"response_schema_check: {args.exchange_log}:{number}: unknown record")
                exchanges += 1
                operation, found = checker.check(record)
                if operation:
                    operations_hit[operation] += 1
                for problem in found:
                    # One line per distinct mismatch: a loop of identical requests reports once.
                    shape = re.sub(r"\(test [^)]*\)|\d+", "#", problem)
                    if shape not in seen_problems:
                        seen_problems.add(shape)
                        problems.append(problem)
    except FileNotFoundError:
        print(f"response_schema_check: FAILED: no exchange log {args.exchange_log}; the e2e tests "
              "did not run in this ctest run (they record with TRANSNOTES_E2E_EXCHANGE_LOG)")
        return 1

    documented = {f"{method.upper()} {template}"
                  for template, item in checker.document["paths"].items()
                  for method in item if method in HTTP_METHODS and method != "options"}
    covered = documented & set(operations_hit)
    whole_suite = listed_tests(args.e2e_binary)
    ran_everything = whole_suite <= started
    print(f"response_schema_check: {exchanges} exchanges from {len(started)} tests; "
          f"{len(covered)}/{len(documented)} documented operations exercised"
          + ("" if ran_everything else f" (a subset: {len(whole_suite - started)} e2e tests did not run, "
             "so the coverage floor does not apply)"))
    for operation in sorted(documented - covered):
        print(f"response_schema_check: not exercised: {operation}")

    if not exchanges:
        problems.append("no exchanges were recorded")
    if ran_everything:
        if exchanges < args.min_exchanges:
            problems.append(f"only {exchanges} exchanges recorded (at least {args.min_exchanges} expected)")
        if len(covered) < args.min_coverage * len(documented):
            problems.append(f"only {len(covered)} of {len(documented)} documented operations exercised "
                            f"(at least {args.min_coverage:.0%} expected)")
    if problems:
        for problem in problems:
            print(f"response_schema_check: {problem}")
        print(f"response_schema_check: FAILED ({len(problems)} problems)")
        return 1
    print("response_schema_check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
