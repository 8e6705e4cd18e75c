from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SelectionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_MODE_UNSPECIFIED: _ClassVar[SelectionMode]
    SELECTION_MODE_CHANNEL_WISE: _ClassVar[SelectionMode]
    SELECTION_MODE_REGION_WISE: _ClassVar[SelectionMode]
    SELECTION_MODE_GLOBAL: _ClassVar[SelectionMode]

class ValueCoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_CODING_UNSPECIFIED: _ClassVar[ValueCoding]
    VALUE_CODING_DENSE: _ClassVar[ValueCoding]
    VALUE_CODING_ZERO_RUNS: _ClassVar[ValueCoding]
SELECTION_MODE_UNSPECIFIED: SelectionMode
SELECTION_MODE_CHANNEL_WISE: SelectionMode
SELECTION_MODE_REGION_WISE: SelectionMode
SELECTION_MODE_GLOBAL: SelectionMode
VALUE_CODING_UNSPECIFIED: ValueCoding
VALUE_CODING_DENSE: ValueCoding
VALUE_CODING_ZERO_RUNS: ValueCoding

class FeatureBitstream(_message.Message):
    __slots__ = ("version", "crc32", "body")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    version: int
    crc32: int
    body: bytes
    def __init__(self, version: _Optional[int] = ..., crc32: _Optional[int] = ..., body: _Optional[bytes] = ...) -> None: ...

class FeatureMap(_message.Message):
    __slots__ = ("channels", "height", "width", "mode", "block_size", "border", "bits", "kept_units", "offset", "scale", "value_coding", "value_group", "nonzero_values", "payload", "part_bits")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    BORDER_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    KEPT_UNITS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    VALUE_CODING_FIELD_NUMBER: _ClassVar[int]
    VALUE_GROUP_FIELD_NUMBER: _ClassVar[int]
    NONZERO_VALUES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PART_BITS_FIELD_NUMBER: _ClassVar[int]
    channels: int
    height: int
    width: int
    mode: SelectionMode
    block_size: int
    border: int
    bits: int
    kept_units: int
    offset: float
    scale: float
    value_coding: ValueCoding
    value_group: int
    nonzero_values: int
    payload: bytes
    part_bits: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, channels: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., mode: _Optional[_Union[SelectionMode, str]] = ..., block_size: _Optional[int] = ..., border: _Optional[int] = ..., bits: _Optional[int] = ..., kept_units: _Optional[int] = ..., offset: _Optional[float] = ..., scale: _Optional[float] = ..., value_coding: _Optional[_Union[ValueCoding, str]] = ..., value_group: _Optional[int] = ..., nonzero_values: _Optional[int] = ..., payload: _Optional[bytes] = ..., part_bits: _Optional[_Iterable[int]] = ...) -> None: ...
