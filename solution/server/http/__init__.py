"""The HTTP/1.1 front-end (uvloop + httptools, no framework), socket bytes to response bytes:

- ``state``: what the connections of one server share (settings, handler, hooks, drain);
- ``protocol``: one asyncio Protocol per connection, the glue around the I/O-free parts below;
- ``peer``: whether a client that sent a FIN read the answers written after it;
- ``reader``: bytes in, complete requests or one typed error (with its status) out;
- ``pipeline``: answers in request order, a bounded number of handlers at once;
- ``flow``: reading pauses while the pipeline is full or the client does not read;
- ``messages``: ``Request``, ``Response`` and their encoding;
- ``routes``: decode the JSON body, call ``engine.service.Service``, encode; one error table.

Imports go down only: to ``engine.service`` (the one entry point) and ``config``.
"""
