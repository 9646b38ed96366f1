"""The gRPC load client against the real gRPC front-end on the tiny stand-ins: requests
pre-serialised, answers decoded and checked the way the reference client checks them."""

from solution.benchmarks.checks import expected_labels
from solution.benchmarks.grpc_client import CLASSIFY, GrpcTarget
from solution.benchmarks.load import closed_loop


def test_codec_round_trips_the_process_shape():
    from solution.proto.classifier.v1 import classifier_pb2 as pb

    assert pb.ClassifyRequest.FromString(CLASSIFY.encode("héllo 👍")).text == "héllo 👍"
    answer = pb.ClassifyResponse(
        result=pb.Result(predictions=[pb.Prediction(model="svalabs", label="HAM", score=0.75)])
    )
    assert CLASSIFY.decode(answer.SerializeToString()) == {
        "svalabs": {"score": 0.75, "label": "HAM"}
    }


async def test_grpc_closed_loop_against_the_service(frontends):
    target = GrpcTarget(
        frontends.grpc_target, ["a", "b", ""], CLASSIFY, expected_labels(), timeout_s=30, channels=2
    )
    try:
        tally = await closed_loop(target, vus=3, duration_s=0.5)
    finally:
        await target.aclose()
    assert not tally.errors, tally.errors
    assert len(tally.latencies) > 0 and tally.failed == 0
