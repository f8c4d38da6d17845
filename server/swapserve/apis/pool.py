"""One private descriptor pool holding the TF Serving and KServe V2 APIs.

Why private: a process may also import ``tensorflow-serving-api``'s or ``tritonclient``'s own
generated stubs (tests do, to prove wire compatibility; a user's plug-in might). Those register
the same file names and symbols in protobuf's default pool, where a second registration is an
error. A private pool cannot clash, and the wire format does not care which pool a message
class came from. Imports from outside our files (``tensorflow/core/...``,
``google/protobuf/...``) are copied in from the default pool, i.e. from the installed tensorflow
and protobuf packages.

Files enter the pool on first use, with what they import: reading a ``ModelServerConfig`` or a
Triton ``config.pbtxt`` never imports TensorFlow; ``PredictRequest`` (which holds TensorProtos)
does. There is one pool per process, so every module sees the same classes (a message of one
pool cannot be assigned into a field typed by another).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterable
from importlib import resources

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

#: Our descriptor sets (``make protos``, from ``protos/``).
SETS = ("tfserving.binpb", "kserve_v2.binpb")


def _our_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for name in SETS:
        raw = resources.files(__package__).joinpath("descriptors", name).read_bytes()
        for file in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
            files[file.name] = file
    return files


class _Pool:
    def __init__(self) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._files = _our_files()
        self._home = {  # top-level message / enum / service full name -> our file defining it
            f"{file.package}.{item.name}": file.name
            for file in self._files.values()
            for kind in (file.message_type, file.enum_type, file.service)
            for item in kind
        }
        self._lock = threading.Lock()  # guards pool additions and _added
        self._added: set[str] = set()

    def _add(self, name: str) -> None:
        """Adds file ``name`` (ours or installed) after what it imports; caller holds the lock."""
        if name in self._added:
            return
        ours = self._files.get(name)
        if ours is not None:
            for dep in ours.dependency:
                self._add(dep)
            self.pool.Add(ours)
        else:
            module = name.removesuffix(".proto").replace("/", ".") + "_pb2"
            # A transitive import may have no module of its own: its importer registered it.
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
            installed = descriptor_pool.Default().FindFileByName(name)
            for imported in installed.dependencies:
                self._add(imported.name)
            self.pool.Add(descriptor_pb2.FileDescriptorProto.FromString(installed.serialized_pb))
        self._added.add(name)

    def add(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._add(name)

    def home(self, full_name: str) -> str | None:
        return self._home.get(full_name)

    def all_files(self) -> list[str]:
        return sorted(self._files)


_POOL = _Pool()


def message_class(full_name: str, imported: bool = False) -> type[message.Message]:
    """The class of message ``full_name`` (e.g. ``tensorflow.serving.PredictRequest``).

    Args:
        full_name: the message's full name.
        imported: also look in the files ours import (``tensorflow.TensorProto``); that adds
            all our files, and so imports TensorFlow.

    Raises:
        KeyError: no such message.
    """
    home = _POOL.home(full_name)
    if home is None and not imported:
        raise KeyError(full_name)
    _POOL.add([home] if home is not None else _POOL.all_files())
    return message_factory.GetMessageClass(_POOL.pool.FindMessageTypeByName(full_name))


def service(full_name: str) -> descriptor.ServiceDescriptor:
    """Service ``full_name`` (e.g. ``inference.GRPCInferenceService``) with its file added.

    Raises:
        KeyError: no such service in our files.
    """
    home = _POOL.home(full_name)
    if home is None:
        raise KeyError(full_name)
    _POOL.add([home])
    return _POOL.pool.FindServiceByName(full_name)


def descriptors() -> descriptor_pool.DescriptorPool:
    """The private pool itself: where ``google.protobuf.Any`` type URLs of our messages resolve
    (``json_format`` looks in the default pool unless given this one)."""
    return _POOL.pool


def reflection_pool(*others: descriptor.FileDescriptor) -> descriptor_pool.DescriptorPool:
    """The pool with all our files plus ``others`` (from the default pool: swapserve's own API,
    health, reflection), for server reflection, which reads one pool."""
    _POOL.add([*_POOL.all_files(), *(f.name for f in others)])
    return _POOL.pool


def our_files() -> list[descriptor.FileDescriptor]:
    """Every file of ours, in the pool (for checks against the reference stubs)."""
    _POOL.add(_POOL.all_files())
    return [_POOL.pool.FindFileByName(name) for name in _POOL.all_files()]
