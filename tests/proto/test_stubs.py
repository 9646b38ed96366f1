"""The committed stubs are what ``make proto`` generates from the committed .proto files."""

from __future__ import annotations

from pathlib import Path

from solution.proto import generate


def test_committed_stubs_match_the_proto(tmp_path: Path):
    generate.generate(tmp_path)
    stale = [
        path
        for path in generate.generated_files()
        if not (generate.ROOT / path).is_file()
        or (tmp_path / path).read_bytes() != (generate.ROOT / path).read_bytes()
    ]
    assert not stale, f"stale gRPC stubs {stale}: run `make proto` and commit the result"


def test_stubs_import_from_the_package_path():
    from solution.proto.classifier.v1 import classifier_pb2, classifier_pb2_grpc

    service = classifier_pb2.DESCRIPTOR.services_by_name["Classifier"]
    assert service.full_name == "classifier.v1.Classifier"
    assert [m.name for m in service.methods] == ["Classify", "ClassifyBatch", "ListModels"]
    assert hasattr(classifier_pb2_grpc, "ClassifierStub")
