"""Response encoding: the bytes on the wire."""

from __future__ import annotations

import orjson

from solution.server.http.messages import Response, encode_response, error_response


def test_a_response_carries_its_length_type_headers_and_connection():
    wire = encode_response(Response(200, b"{}", headers=[(b"x-a", b"1")]), keep_alive=True)
    assert wire == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
        b"x-a: 1\r\nconnection: keep-alive\r\n\r\n{}"
    )
    assert encode_response(Response(200, b""), keep_alive=False).endswith(
        b"connection: close\r\n\r\n"
    )


def test_a_head_answer_has_the_length_get_would_have_and_no_body():
    response = error_response(405, "HEAD not allowed", [(b"allow", b"POST")])
    wire = encode_response(response, keep_alive=True, head_only=True)
    assert wire.endswith(b"\r\n\r\n")
    assert b"content-length: %d\r\n" % len(response.body) in wire
    assert orjson.loads(response.body) == {"error": "HEAD not allowed"}


def test_statuses_outside_the_standard_table_still_encode():
    assert encode_response(Response(599, b""), keep_alive=False).startswith(b"HTTP/1.1 599 \r\n")
