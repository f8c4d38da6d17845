"""Triton's per-model ``config.pbtxt`` (protobuf text format) as swapserve model settings.

A Triton model repository (``repo/<model>/config.pbtxt``, ``repo/<model>/<version>/
model.savedmodel/``) is served as it is (``sources.RepositorySource``). Of ``ModelConfig`` the keys
whose meaning swapserve keeps are honoured: ``version_policy``, ``max_batch_size`` with
``dynamic_batching`` (``preferred_batch_size``, ``max_queue_delay_microseconds``), ``model_warmup``
with generated data, and ``input``/``output`` (each version's signature is checked against them
before it serves); those and ``instance_group`` are reported as written. The message is
``inference.ModelConfig`` of our ``protos/inference/model_config.proto`` (Triton's published names
and numbers, the subset swapserve answers and reads); every other top-level key is skipped (and
named once in the log by the repository source), so a config written for Triton never stops a model.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from google.protobuf import json_format

from swapserve.apis import kserve_v2
from swapserve.config import text_proto
from swapserve.config.model_settings import (
    ALL_VERSIONS,
    BatchingSettings,
    DeclaredConfig,
    ModelSettings,
    SettingsError,
    TensorDeclaration,
    VersionPolicy,
)

CONFIG_FILE = "config.pbtxt"
HONOURED = ("name", "platform", "backend", "version_policy", "max_batch_size",
            "dynamic_batching", "model_warmup", "input", "output", "instance_group")  # fmt: skip
"""The ``ModelConfig`` keys swapserve reads (the rest are skipped and named in the log)."""
AS_WRITTEN = ("max_batch_size", "input", "output", "instance_group")
"""Keys the model config endpoints report as the file writes them."""
_TF_DTYPE = {1: 10, 2: 4, 3: 17, 4: 22, 5: 23, 6: 6, 7: 5, 8: 3, 9: 9, 10: 19, 11: 1, 12: 2,
             13: 7, 14: 14}  # fmt: skip
"""Triton's ``DataType`` (TYPE_BOOL = 1 ... TYPE_BF16 = 14) -> TensorFlow's DataType number."""
_TENSORFLOW = {"platform": ("", "tensorflow_savedmodel"), "backend": ("", "tensorflow")}


def parse(text: str, where: str) -> tuple[Any, tuple[str, ...]]:
    """A ``config.pbtxt`` as a ``ModelConfig`` message, and the top-level keys it skipped (those
    outside the subset).

    Raises:
        SettingsError: a syntax error or a bad value of an honoured key (line and column).
    """
    config = kserve_v2.ModelConfig()
    skipped = {k for k in _top_level_keys(text) if k not in HONOURED}
    text_proto.parse(_without(text, skipped), config, where, allow_unknown_field=True)
    return config, tuple(sorted(skipped))


def model_settings(
    name: str, root: str, text: str | None, base: ModelSettings
) -> tuple[ModelSettings, tuple[str, ...]]:
    """The settings of repository model ``name`` (directory ``root``) from its ``config.pbtxt``
    (None: there is none; Triton's defaults apply: newest version, no batching), and the keys
    of the file that swapserve does not apply.

    Args:
        name: the model's directory name (the name clients use).
        root: the model's directory.
        text: its config.pbtxt.
        base: the options no config.pbtxt key sets (polling, settle times, request limits).

    Raises:
        SettingsError: the config is invalid, names another model or platform, or asks for a
            warm-up swapserve cannot run (the message names the file and key).
    """
    where = f"{name}/{CONFIG_FILE}"
    fields = {
        f.name: getattr(base, f.name)
        for f in dataclasses.fields(base)
        if f.name not in ("name", "export_root", "remote")
    }
    fields["versions"], fields["batching"] = VersionPolicy(), BatchingSettings()
    skipped: tuple[str, ...] = ()
    if text is not None:
        config, skipped = parse(text, where)
        if config.name and config.name != name:
            raise SettingsError(
                f"{where}: name {config.name!r} differs from the model's directory name "
                f"{name!r} (Triton requires them to match)"
            )
        for key, allowed in _TENSORFLOW.items():
            if getattr(config, key) not in allowed:
                raise SettingsError(
                    f"{where}: {key} {getattr(config, key)!r} is not served here: swapserve "
                    f"serves TensorFlow SavedModels ({key}: {allowed[1]!r})"
                )
        fields["versions"] = _versions(config, where)
        fields["batching"] = _batching(config, where)
        fields["declared"] = _declared(config, where)
        _check_warmup(config, where)
    settings = ModelSettings.at(name, root, **fields)
    try:
        settings.validate()
    except SettingsError as err:
        raise SettingsError(f"{where}: {err}") from None
    return settings, skipped


def _versions(config: Any, where: str) -> VersionPolicy:
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        if not policy.specific.versions:
            raise SettingsError(f"{where}: version_policy.specific lists no versions")
        return VersionPolicy(specific=tuple(int(v) for v in policy.specific.versions))
    if choice == "all":
        return VersionPolicy(latest=ALL_VERSIONS)
    if choice == "latest":
        return VersionPolicy(latest=policy.latest.num_versions or 1)
    return VersionPolicy()


def _declared(config: Any, where: str) -> DeclaredConfig:
    """The inputs and outputs ``config`` lists (checked against each version's signature
    when it loads) and the keys reported as written."""
    tensors = []
    for output, listed in ((False, config.input), (True, config.output)):
        seen = set()
        for tensor in listed:
            kind = "output" if output else "input"
            if not tensor.name:
                raise SettingsError(f"{where}: an {kind} has no name")
            if tensor.name in seen:
                raise SettingsError(f"{where}: {kind} {tensor.name!r} is listed twice")
            seen.add(tensor.name)
            if any(d < -1 for d in tensor.dims):
                raise SettingsError(
                    f"{where}: {kind} {tensor.name!r}: dims must be >= -1, got {list(tensor.dims)}"
                )
            dims = tuple(int(d) for d in tensor.dims)
            dtype = _TF_DTYPE.get(tensor.data_type, 0)
            tensors.append(TensorDeclaration(tensor.name, dtype, dims, output))
    written = json_format.MessageToDict(config, preserving_proto_field_name=True)
    kept = {k: _numbers(written[k]) for k in AS_WRITTEN if k in written}
    return DeclaredConfig(
        tuple(tensors), config.max_batch_size > 0, json.dumps(kept) if kept else ""
    )


def _numbers(value: Any) -> Any:
    """``value`` with protobuf JSON's int64 strings (``dims``, ``shape``) as numbers, as Triton
    writes them."""
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {
            k: [int(x) for x in v] if k in ("dims", "shape") else _numbers(v)
            for k, v in value.items()
        }
    return value


def _batching(config: Any, where: str) -> BatchingSettings:
    """``max_batch_size`` > 0 with ``dynamic_batching``: our batcher with those sizes. Triton's
    delay defaults to 0: run at once what is queued when an instance is free, which is our
    eager mode; a delay waits for a preferred size, which is our timeout mode."""
    if config.max_batch_size < 0:
        raise SettingsError(f"{where}: max_batch_size must be >= 0, got {config.max_batch_size}")
    if not config.HasField("dynamic_batching"):
        return BatchingSettings()
    if config.max_batch_size == 0:
        raise SettingsError(
            f"{where}: dynamic_batching needs max_batch_size > 0 (0 means the model has no "
            "batch dimension)"
        )
    dynamic = config.dynamic_batching
    batching = BatchingSettings(
        enabled=True,
        max_batch_size=config.max_batch_size,
        batch_timeout_micros=int(dynamic.max_queue_delay_microseconds),
        preferred_batch_sizes=tuple(sorted(set(dynamic.preferred_batch_size))),
        mode="timeout" if dynamic.max_queue_delay_microseconds else "eager",
    )
    try:
        batching.validate()
    except SettingsError as err:
        raise SettingsError(f"{where}: dynamic_batching: {err}") from None
    return batching


def _check_warmup(config: Any, where: str) -> None:
    """Generated warm-up data (``zero_data``, ``random_data``) is what swapserve's own warm-up
    does before a version serves (a zero batch through every signature); a data file is not
    read, so a config that needs one is refused rather than served cold."""
    for i, warmup in enumerate(config.model_warmup):
        for input_name, spec in warmup.inputs.items():
            if spec.WhichOneof("input_data_type") == "input_data_file":
                raise SettingsError(
                    f"{where}: model_warmup[{i}] ({warmup.name or 'unnamed'}) input "
                    f"{input_name!r} reads input_data_file {spec.input_data_file!r}: warm-up "
                    "data files are not supported; use zero_data or random_data, or put TF "
                    "Serving warm-up records in the export's assets.extra/"
                )


_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"'  # a double-quoted string
    r"|'(?:[^'\\\n]|\\.)*'"  # a single-quoted string
    r"|#[^\n]*"  # a comment
    r"|[{}<>\[\]]"  # a bracket
    r"|[^\s{}<>\[\]:,;\"'#]+"  # a name or a value
)
_OPEN, _CLOSE = frozenset("{<["), frozenset("}>]")


def _top_level_fields(text: str) -> list[tuple[str, int, int]]:
    """The fields written at the top level of a text-format message: name, start, end."""
    fields: list[tuple[str, int, int]] = []
    depth, key_at = 0, -1  # key_at: the index of the open field in ``fields``, or -1
    for match in _TOKEN.finditer(text):
        word = match.group()
        if word.startswith("#"):
            continue
        if word in _OPEN:
            depth += 1
        elif word in _CLOSE:
            depth -= 1
            if depth == 0 and key_at >= 0:
                name, start, _ = fields[key_at]
                fields[key_at], key_at = (name, start, match.end()), -1
        elif depth == 0:
            if key_at < 0:
                fields.append((word, match.start(), match.end()))
                key_at = len(fields) - 1
            else:  # the field's value
                name, start, _ = fields[key_at]
                fields[key_at], key_at = (name, start, match.end()), -1
    return fields


def _top_level_keys(text: str) -> list[str]:
    """The field names written at the top level of a text-format message."""
    return [name for name, _, _ in _top_level_fields(text)]


def _without(text: str, names: set[str]) -> str:
    """``text`` with the top-level fields ``names`` blanked out; lines and columns unchanged
    (protobuf's parser cannot skip an unknown ``key [ {...} ]`` list, which Triton configs use)."""
    out = list(text)
    for name, start, end in _top_level_fields(text):
        if name in names:
            out[start:end] = [c if c == "\n" else " " for c in text[start:end]]
    return "".join(out)
