"""Our TF Serving and KServe V2 protos (protos/, served from swapserve.apis) against the reference
stubs: tensorflow-serving-api's and tritonclient's. Every message, field, enum value and RPC we
define must exist there with the same name, number, type, label and oneof, so both sides read
each other's bytes. Our files may define less (a subset), never something different."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from google.protobuf import descriptor, descriptor_pool

from swapserve.apis import kserve_v2, pool, tfserving

# Reference modules registering the same messages in protobuf's default pool.
REFERENCE = [
    *(
        f"tensorflow_serving.apis.{name}_pb2"
        for name in [
            "model",
            "predict",
            "input",
            "classification",
            "regression",
            "inference",
            "get_model_metadata",
            "get_model_status",
            "status",
            "model_management",
            "model_service",
            "prediction_service",
            "session_service",
            "logging",
            "prediction_log",
        ]
    ),
    *(
        f"tensorflow_serving.config.{name}_pb2"
        for name in [
            "model_server_config",
            "file_system_storage_path_source",
            "logging_config",
            "log_collector_config",
        ]
    ),
    "tritonclient.grpc.service_pb2",
    "tritonclient.grpc.model_config_pb2",
]
# Ours with no generated module in the reference wheels (checked by name and number in
# tests/unit/test_apis.py against the values TF Serving publishes).
NOT_IN_WHEELS = {
    "tensorflow_serving/config/monitoring_config.proto",
    "tensorflow_serving/config/ssl_config.proto",
    "tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
}


@pytest.fixture(scope="module")
def reference() -> descriptor_pool.DescriptorPool:
    for module in REFERENCE:
        importlib.import_module(module)
    return descriptor_pool.Default()


def _field_shape(field: descriptor.FieldDescriptor) -> tuple[object, ...]:
    kind = field.message_type or field.enum_type
    return (
        field.number,
        field.type,
        field.is_repeated if hasattr(field, "is_repeated") else field.label,
        kind.full_name if kind is not None else None,
        field.containing_oneof.name if field.containing_oneof else None,
    )


def _compare_message(ours: descriptor.Descriptor, theirs: descriptor.Descriptor) -> list[str]:
    problems = []
    for field in ours.fields:
        other = theirs.fields_by_name.get(field.name)
        if other is None:
            problems.append(f"{ours.full_name}.{field.name}: not in the reference")
        elif _field_shape(field) != _field_shape(other):
            problems.append(
                f"{ours.full_name}.{field.name}: {_field_shape(field)} != {_field_shape(other)}"
            )
    for nested in ours.nested_types:
        problems += _compare_message(nested, theirs.nested_types_by_name[nested.name])
    for enum in ours.enum_types:
        problems += _compare_enum(enum, theirs.enum_types_by_name[enum.name])
    return problems


def _compare_enum(ours: descriptor.EnumDescriptor, theirs: descriptor.EnumDescriptor) -> list[str]:
    theirs_values = {v.name: v.number for v in theirs.values}
    return [
        f"{ours.full_name}.{v.name} = {v.number}, reference {theirs_values.get(v.name)}"
        for v in ours.values
        if theirs_values.get(v.name) != v.number
    ]


def test_every_definition_of_ours_matches_the_reference(
    reference: descriptor_pool.DescriptorPool,
) -> None:
    problems: list[str] = []
    counted = 0
    for file in pool.our_files():
        if file.name in NOT_IN_WHEELS:
            continue
        for message in file.message_types_by_name.values():
            counted += 1
            try:
                theirs = reference.FindMessageTypeByName(message.full_name)
            except KeyError:
                problems.append(f"{message.full_name}: not in the reference")
                continue
            problems += _compare_message(message, theirs)
        for enum in file.enum_types_by_name.values():
            problems += _compare_enum(enum, reference.FindEnumTypeByName(enum.full_name))
        for service in file.services_by_name.values():
            theirs_service = reference.FindServiceByName(service.full_name)
            for method in service.methods:
                other = theirs_service.methods_by_name.get(method.name)
                assert other is not None, f"{service.full_name}/{method.name}"
                assert method.input_type.full_name == other.input_type.full_name
                assert method.output_type.full_name == other.output_type.full_name
    assert counted > 80, counted  # the check saw our files
    assert not problems, "\n".join(problems)


def test_bytes_cross_both_ways() -> None:
    """A request built by the reference stubs reads back field for field in ours, and back."""
    from tensorflow_serving.apis import predict_pb2
    from tritonclient.grpc import service_pb2

    theirs = predict_pb2.PredictRequest()
    theirs.model_spec.name = "m"
    theirs.model_spec.version.value = 7
    theirs.inputs["x"].dtype = 1
    theirs.inputs["x"].float_val.extend([1.5, 2.5])
    theirs.output_filter.append("y")
    ours = tfserving.PredictRequest.FromString(theirs.SerializeToString())
    assert ours.model_spec.version.value == 7
    assert list(ours.inputs["x"].float_val) == [1.5, 2.5]
    assert predict_pb2.PredictRequest.FromString(ours.SerializeToString()) == theirs

    infer = service_pb2.ModelInferRequest(model_name="m", model_version="2")
    tensor = infer.inputs.add(name="x", datatype="FP32", shape=[2])
    tensor.contents.fp32_contents.extend([1.0, 2.0])
    infer.raw_input_contents.append(np.float32([3]).tobytes())
    mine = kserve_v2.ModelInferRequest.FromString(infer.SerializeToString())
    assert mine.inputs[0].shape == [2]
    assert service_pb2.ModelInferRequest.FromString(mine.SerializeToString()) == infer
