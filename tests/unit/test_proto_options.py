"""swapserve.v1's per-language options (where generated code goes in Go, Java, C#, Objective-C)
are set, as the generated descriptor carries them; buf lint (make lint) checks the rest."""

from __future__ import annotations

from swapserve_client._proto.swapserve.v1 import prediction_pb2


def test_every_language_has_its_package_option() -> None:
    options = prediction_pb2.DESCRIPTOR.GetOptions()
    assert options.go_package == "github.com/swapserve/swapserve/protos/swapserve/v1;swapservev1"
    assert options.java_package == "dev.swapserve.v1"
    assert options.java_multiple_files and options.java_outer_classname == "PredictionProto"
    assert options.csharp_namespace == "Swapserve.V1"
    assert options.objc_class_prefix == "SSV"
