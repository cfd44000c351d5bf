from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignRequest(_message.Message):
    __slots__ = ("epoch", "quorum_id", "erasure_commitment", "storage_root", "encoded_slice")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    QUORUM_ID_FIELD_NUMBER: _ClassVar[int]
    ERASURE_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    ENCODED_SLICE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    quorum_id: int
    erasure_commitment: bytes
    storage_root: bytes
    encoded_slice: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, epoch: _Optional[int] = ..., quorum_id: _Optional[int] = ..., erasure_commitment: _Optional[bytes] = ..., storage_root: _Optional[bytes] = ..., encoded_slice: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BatchSignRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SignRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SignRequest, _Mapping]]] = ...) -> None: ...

class BatchSignReply(_message.Message):
    __slots__ = ("signatures",)
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RetrieveRequest(_message.Message):
    __slots__ = ("epoch", "quorum_id", "storage_root", "row_indexes")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    QUORUM_ID_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    ROW_INDEXES_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    quorum_id: int
    storage_root: bytes
    row_indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, epoch: _Optional[int] = ..., quorum_id: _Optional[int] = ..., storage_root: _Optional[bytes] = ..., row_indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchRetrieveRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RetrieveRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RetrieveRequest, _Mapping]]] = ...) -> None: ...

class Slices(_message.Message):
    __slots__ = ("encoded_slice",)
    ENCODED_SLICE_FIELD_NUMBER: _ClassVar[int]
    encoded_slice: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, encoded_slice: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BatchRetrieveReply(_message.Message):
    __slots__ = ("encoded_slice",)
    ENCODED_SLICE_FIELD_NUMBER: _ClassVar[int]
    encoded_slice: _containers.RepeatedCompositeFieldContainer[Slices]
    def __init__(self, encoded_slice: _Optional[_Iterable[_Union[Slices, _Mapping]]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("status_code", "entrance_contract")
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ENTRANCE_CONTRACT_FIELD_NUMBER: _ClassVar[int]
    status_code: int
    entrance_contract: str
    def __init__(self, status_code: _Optional[int] = ..., entrance_contract: _Optional[str] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
