from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("request_id", "model_fingerprint", "split", "bitstreams")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    BITSTREAMS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_fingerprint: str
    split: str
    bitstreams: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, request_id: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., split: _Optional[str] = ..., bitstreams: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ClassProbability(_message.Message):
    __slots__ = ("class_index", "probability")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    probability: float
    def __init__(self, class_index: _Optional[int] = ..., probability: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("class_index", "class_name", "top5")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    TOP5_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    class_name: str
    top5: _containers.RepeatedCompositeFieldContainer[ClassProbability]
    def __init__(self, class_index: _Optional[int] = ..., class_name: _Optional[str] = ..., top5: _Optional[_Iterable[_Union[ClassProbability, _Mapping]]] = ...) -> None: ...

class ServerTimings(_message.Message):
    __slots__ = ("queue_ms", "decode_ms", "tail_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    TAIL_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    decode_ms: float
    tail_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., tail_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("request_id", "predictions", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    timings: ServerTimings
    def __init__(self, request_id: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., timings: _Optional[_Union[ServerTimings, _Mapping]] = ...) -> None: ...
