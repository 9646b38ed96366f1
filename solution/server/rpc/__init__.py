"""The gRPC front-end (``classifier.v1``, health, reflection) on grpc.aio.

Named ``rpc`` rather than ``grpc`` so that it never shadows the grpc library in tools or
tracebacks. ``servicer`` decodes protobuf, calls ``engine.service.Service`` (the same call the HTTP
routes make) and maps errors to status codes in one table.
"""
