"""The benchmark and load-test plumbing: report sections and the raw WSGI ceiling."""

from __future__ import annotations

import io
import json

import pytest

from bench import common


def test_report_sections_replace_their_own_part_and_keep_the_others(tmp_path):
    report = tmp_path / "PERFORMANCE.md"
    common.report_section_write(report, "bench", "# Performance\n\nbench v1")
    common.report_section_write(report, "loadtest", "## Load test\n\nlocust v1")
    common.report_section_write(report, "bench", "# Performance\n\nbench v2")

    text = report.read_text()
    assert "bench v2" in text
    assert "bench v1" not in text
    assert "locust v1" in text
    assert text.index("bench v2") < text.index("locust v1")  # order kept
    assert text.count("<!-- loadtest:start -->") == 1 == text.count("<!-- bench:start -->")


@pytest.mark.django_db
def test_raw_wsgi_ceiling_answers_without_django_and_passes_the_rest_on():
    from bench.wsgi import application

    def call(path: str) -> tuple[str, bytes]:
        seen: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen["status"] = status

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
        }
        body = b"".join(application(environ, start_response))
        return seen["status"], body

    status, body = call("/bench/raw")
    assert status == "200 OK"
    assert json.loads(body)["segment"] == "CASUAL"
    status, body = call("/health")
    assert status.startswith("200")
    assert json.loads(body) == {"status": "ok"}
