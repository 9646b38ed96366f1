"""The HTTP/1.1 front-end (uvloop + httptools, no framework), socket bytes to response bytes:

- ``protocol``: one asyncio Protocol per connection, the glue around the I/O-free parts below;
- ``reader``: bytes in, complete requests or one typed error (with its status) out;
- ``pipeline``: answers in request order, a bounded number of handlers at once;
- ``flow``: reading pauses while the pipeline is full or the client does not read;
- ``messages``: ``Request``, ``Response`` and their encoding;
- ``routes``: decode the JSON body, call ``engine.service.Service``, encode; one error table.

Imports go down only: to ``engine.service`` (the one entry point) and ``config``.
"""
