"""``classifier.v1``: the generated stubs (``make proto``) and the contract's one constant."""

# Trailing metadata key on every status the service itself sends, naming the error (for example
# "Overloaded"); a status without it came from the gRPC library (no server, a local deadline).
ERROR_METADATA_KEY = "classifier-error"
