#!/usr/bin/env python3
"""Tests of response_schema_check.py against the real docs/openapi.yaml with made-up exchange logs:
it must refuse a response the document does not describe, and never pass on nothing.

Usage: response_schema_check_test.py [SOURCE_DIR]
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
CHECK = SOURCE_DIR / "tests" / "e2e" / "response_schema_check.py"
DOCUMENT = SOURCE_DIR / "docs" / "openapi.yaml"

NOTE = {"id": 1, "title": "t", "original_text": "hello", "original_language": "en",
        "translated_text": None, "translated_language": None,
        "created_at": "2026-11-29T17:08:07.123456Z", "updated_at": "2026-11-29T17:08:07.123456Z"}


def exchange(method, target, status, body=None, content_type="application/json", test="Suite.A",
             headers=None):
    record = {"kind": "exchange", "test": test, "method": method, "target": target,
              "status": status, "content_type": content_type,
              "body_size": len(body) if body is not None else 0,
              "headers": dict(headers if headers is not None else {"x-request-id": "r-1"})}
    if body is not None:
        record["body"] = body
    return record


class ResponseSchemaCheck(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.log = pathlib.Path(self.dir.name) / "exchanges.jsonl"
        # Stands in for e2e_tests --gtest_list_tests: a suite of two tests.
        self.binary = pathlib.Path(self.dir.name) / "list_tests"
        self.binary.write_text("#!/bin/sh\nprintf 'Suite.\\n  A\\n  B  # GetParam() = 1\\n'\n")
        self.binary.chmod(0o755)

    def tearDown(self):
        self.dir.cleanup()

    def run_check(self, records, *extra):
        if records is not None:
            self.log.write_text("".join(json.dumps(r) + "\n" for r in records))
        result = subprocess.run([sys.executable, str(CHECK), str(DOCUMENT), str(self.log), str(self.binary),
                                 *extra], capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout + result.stderr

    def started(self, *names):
        return [{"kind": "test", "test": name} for name in names]

    def test_documented_responses_pass(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 200, json.dumps(NOTE)),
            exchange("GET", "/api/v1/notes/?limit=5", 200, json.dumps([NOTE])),
            exchange("HEAD", "/api/v1/notes/1", 200),
            exchange("DELETE", "/api/v1/notes/1/", 204, content_type=""),
            exchange("GET", "/api/v1/nothing/", 404, json.dumps({"detail": "Not found."})),
            exchange("DELETE", "/api/v1/stats/", 405, json.dumps({"detail": 'Method "DELETE" not allowed.'})),
            exchange("GET", "/metrics", 200, None, "text/plain; version=0.0.4"),
        ])
        self.assertEqual(code, 0, output)

    def test_body_off_the_schema_fails(self):
        note = dict(NOTE)
        del note["updated_at"]
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 200, json.dumps(note))])
        self.assertEqual(code, 1, output)
        self.assertIn("'updated_at' is a required property", output)

    def test_field_the_document_does_not_name_fails(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 200, json.dumps(dict(NOTE, owner_id=7)))])
        self.assertEqual(code, 1, output)
        self.assertIn("'owner_id' was unexpected", output)

    def test_undocumented_status_fails(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 418, json.dumps({"detail": "teapot"})),
            exchange("GET", "/api/v1/notes/1/", 500, json.dumps({"detail": "A server error occurred."}))])
        self.assertEqual(code, 1, output)
        self.assertIn("status 418 is not documented for GET /api/v1/notes/{id}/", output)

    def test_undocumented_media_type_and_unexpected_body_fail(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 200, "<html/>", "text/html"),
            exchange("DELETE", "/api/v1/notes/1/", 204, "{}")])
        self.assertEqual(code, 1, output)
        self.assertIn("Content-Type text/html is not documented", output)
        self.assertIn("documented without a body", output)

    def test_missing_request_id_and_header_off_its_schema_fail(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/notes/1/", 200, json.dumps(NOTE), headers={}),
            exchange("GET", "/api/v1/notes/1/", 401, json.dumps({"detail": "x"}),
                     headers={"x-request-id": "r-2", "www-authenticate": "Basic"})])
        self.assertEqual(code, 1, output)
        self.assertIn("the required header X-Request-ID is missing", output)
        self.assertIn("header WWW-Authenticate", output)

    def test_unknown_path_must_be_404(self):
        code, output = self.run_check(self.started("Suite.A") + [
            exchange("GET", "/api/v1/nothing/", 200, "{}")])
        self.assertEqual(code, 1, output)
        self.assertIn("matches no documented path", output)

    def test_no_log_fails(self):
        code, output = self.run_check(None)
        self.assertEqual(code, 1, output)
        self.assertIn("no exchange log", output)

    def test_no_exchanges_fails(self):
        code, output = self.run_check(self.started("Suite.A"))
        self.assertEqual(code, 1, output)
        self.assertIn("no exchanges were recorded", output)

    def test_whole_suite_needs_enough_exchanges_and_coverage(self):
        records = self.started("Suite.A", "Suite.B") + [
            exchange("GET", "/api/v1/notes/1/", 200, json.dumps(NOTE))]
        code, output = self.run_check(records)
        self.assertEqual(code, 1, output)
        self.assertIn("only 1 exchanges recorded", output)
        self.assertIn("documented operations exercised", output)
        # The same log from a subset of the suite (only Suite.A started) is judged by its content.
        code, output = self.run_check(records[:1] + records[2:])
        self.assertEqual(code, 0, output)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=1)
