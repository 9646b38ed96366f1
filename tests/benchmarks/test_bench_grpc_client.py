"""The gRPC load client against a grpc.aio server built from a stand-in proto: the real stubs are
not on this branch yet, so this proves the generic path (codec found from the service
descriptor, requests pre-serialised, answers parsed and checked), not the final message shapes."""

import sys
import textwrap

import grpc
import pytest
from grpc_tools import protoc

from solution.benchmarks.checks import expected_labels
from solution.benchmarks.grpc_client import GrpcTarget, find_codec
from solution.benchmarks.load import closed_loop
from tests.conftest import free_port

PROTO = """
syntax = "proto3";
package classifier.v1;
message ClassifyRequest { string text = 1; }
message Prediction { float score = 1; string label = 2; }
message ClassifyResponse { map<string, Prediction> results = 1; }
service Classifier { rpc Classify(ClassifyRequest) returns (ClassifyResponse); }
"""


@pytest.fixture(scope="module")
def stub_package(tmp_path_factory):
    root = tmp_path_factory.mktemp("stubs")
    package = root / "standin_proto"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "classifier.proto").write_text(textwrap.dedent(PROTO))
    argv = ["protoc", f"-I{package}", f"--python_out={package}", "classifier.proto"]
    assert protoc.main(argv) == 0
    sys.path.insert(0, str(root))
    yield "standin_proto"
    sys.path.remove(str(root))


def test_a_package_without_stubs_has_no_codec():
    assert find_codec("solution.benchmarks.peers") is None


async def test_grpc_closed_loop_against_a_stub_server(stub_package):
    codec = find_codec(stub_package)
    assert codec is not None and codec.path == "/classifier.v1.Classifier/Classify"
    module = sys.modules[codec.module]
    labels = expected_labels()
    texts = ["a", "b", ""]
    seen = []

    async def classify(request, context):
        seen.append(request.text)
        answer = module.ClassifyResponse()
        for key in labels:
            answer.results[key].score = 0.5
            answer.results[key].label = "LABEL_0" if request.text != "b" else "wrong"
        for key, label in (("cardiffnlp", "POSITIVE"), ("ivanlau", "English"), ("svalabs", "HAM")):
            answer.results[key].label = label
        return answer

    handler = grpc.method_handlers_generic_handler(
        "classifier.v1.Classifier",
        {
            "Classify": grpc.unary_unary_rpc_method_handler(
                classify,
                request_deserializer=module.ClassifyRequest.FromString,
                response_serializer=module.ClassifyResponse.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        target = GrpcTarget(f"127.0.0.1:{port}", texts, codec, labels, timeout_s=10, channels=2)
        tally = await closed_loop(target, vus=3, duration_s=0.3)
        await target.aclose()
    finally:
        await server.stop(None)
    assert set(seen) == {"a", "b", ""}
    # "b" answers a label outside two models' sets: a third of the answers fail the check
    assert tally.errors.keys() == {"check_label"}
    assert len(tally.latencies) > 0 and tally.failed > 0
    assert abs(tally.failed / (tally.failed + len(tally.latencies)) - 1 / 3) < 0.1
