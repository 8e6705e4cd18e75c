from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SelectionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_MODE_UNSPECIFIED: _ClassVar[SelectionMode]
    SELECTION_MODE_CHANNEL_WISE: _ClassVar[SelectionMode]
    SELECTION_MODE_REGION_WISE: _ClassVar[SelectionMode]
    SELECTION_MODE_GLOBAL: _ClassVar[SelectionMode]
SELECTION_MODE_UNSPECIFIED: SelectionMode
SELECTION_MODE_CHANNEL_WISE: SelectionMode
SELECTION_MODE_REGION_WISE: SelectionMode
SELECTION_MODE_GLOBAL: SelectionMode

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
    __slots__ = ("channels", "height", "width", "mode", "block_size", "border", "bits", "keep_ratio", "kept_units", "offset", "scale", "value_group", "positions", "values")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    BORDER_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    KEEP_RATIO_FIELD_NUMBER: _ClassVar[int]
    KEPT_UNITS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    VALUE_GROUP_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    channels: int
    height: int
    width: int
    mode: SelectionMode
    block_size: int
    border: int
    bits: int
    keep_ratio: float
    kept_units: int
    offset: float
    scale: float
    value_group: int
    positions: CodedSection
    values: CodedSection
    def __init__(self, channels: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., mode: _Optional[_Union[SelectionMode, str]] = ..., block_size: _Optional[int] = ..., border: _Optional[int] = ..., bits: _Optional[int] = ..., keep_ratio: _Optional[float] = ..., kept_units: _Optional[int] = ..., offset: _Optional[float] = ..., scale: _Optional[float] = ..., value_group: _Optional[int] = ..., positions: _Optional[_Union[CodedSection, _Mapping]] = ..., values: _Optional[_Union[CodedSection, _Mapping]] = ...) -> None: ...

class CodedSection(_message.Message):
    __slots__ = ("data", "table_bits", "code_bits", "extra_bits")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TABLE_BITS_FIELD_NUMBER: _ClassVar[int]
    CODE_BITS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_BITS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    table_bits: int
    code_bits: int
    extra_bits: int
    def __init__(self, data: _Optional[bytes] = ..., table_bits: _Optional[int] = ..., code_bits: _Optional[int] = ..., extra_bits: _Optional[int] = ...) -> None: ...
