from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeaseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEASE_STATE_UNSPECIFIED: _ClassVar[LeaseState]
    LEASE_STATE_QUEUED: _ClassVar[LeaseState]
    LEASE_STATE_ACTIVE: _ClassVar[LeaseState]
    LEASE_STATE_RELEASED: _ClassVar[LeaseState]
    LEASE_STATE_EXPIRED: _ClassVar[LeaseState]
    LEASE_STATE_REVOKED: _ClassVar[LeaseState]
    LEASE_STATE_CANCELLED: _ClassVar[LeaseState]
    LEASE_STATE_TIMED_OUT: _ClassVar[LeaseState]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_CLIENT: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
LEASE_STATE_UNSPECIFIED: LeaseState
LEASE_STATE_QUEUED: LeaseState
LEASE_STATE_ACTIVE: LeaseState
LEASE_STATE_RELEASED: LeaseState
LEASE_STATE_EXPIRED: LeaseState
LEASE_STATE_REVOKED: LeaseState
LEASE_STATE_CANCELLED: LeaseState
LEASE_STATE_TIMED_OUT: LeaseState
ROLE_UNSPECIFIED: Role
ROLE_CLIENT: Role
ROLE_ADMIN: Role

class GpuFilter(_message.Message):
    __slots__ = ("name", "min_memory_mib", "indices")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_memory_mib: int
    indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., min_memory_mib: _Optional[int] = ..., indices: _Optional[_Iterable[int]] = ...) -> None: ...

class LeaseSpec(_message.Message):
    __slots__ = ("gpu_count", "fraction", "memory_mib", "compute_pct", "filter", "priority", "wait", "wait_timeout_s", "ttl_s")
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_PCT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    gpu_count: int
    fraction: float
    memory_mib: int
    compute_pct: int
    filter: GpuFilter
    priority: int
    wait: bool
    wait_timeout_s: float
    ttl_s: float
    def __init__(self, gpu_count: _Optional[int] = ..., fraction: _Optional[float] = ..., memory_mib: _Optional[int] = ..., compute_pct: _Optional[int] = ..., filter: _Optional[_Union[GpuFilter, _Mapping]] = ..., priority: _Optional[int] = ..., wait: bool = ..., wait_timeout_s: _Optional[float] = ..., ttl_s: _Optional[float] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("gpu_index", "gpu_uuid", "gpu_name", "memory_mib", "compute_pct", "mps_pipe_directory")
    GPU_INDEX_FIELD_NUMBER: _ClassVar[int]
    GPU_UUID_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_PCT_FIELD_NUMBER: _ClassVar[int]
    MPS_PIPE_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    memory_mib: int
    compute_pct: int
    mps_pipe_directory: str
    def __init__(self, gpu_index: _Optional[int] = ..., gpu_uuid: _Optional[str] = ..., gpu_name: _Optional[str] = ..., memory_mib: _Optional[int] = ..., compute_pct: _Optional[int] = ..., mps_pipe_directory: _Optional[str] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("id", "owner", "state", "spec", "allocations", "created_at", "granted_at", "ended_at", "end_reason", "queue_position", "expires_at", "client_host", "command", "request_id", "simulated", "ttl_s", "enforcement", "usage", "last_active_at", "priority", "slurm_job")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    ENFORCEMENT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SLURM_JOB_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    state: LeaseState
    spec: LeaseSpec
    allocations: _containers.RepeatedCompositeFieldContainer[Allocation]
    created_at: _timestamp_pb2.Timestamp
    granted_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    end_reason: str
    queue_position: int
    expires_at: _timestamp_pb2.Timestamp
    client_host: str
    command: str
    request_id: str
    simulated: bool
    ttl_s: float
    enforcement: str
    usage: LeaseUsage
    last_active_at: _timestamp_pb2.Timestamp
    priority: int
    slurm_job: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., state: _Optional[_Union[LeaseState, str]] = ..., spec: _Optional[_Union[LeaseSpec, _Mapping]] = ..., allocations: _Optional[_Iterable[_Union[Allocation, _Mapping]]] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., granted_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[str] = ..., queue_position: _Optional[int] = ..., expires_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., client_host: _Optional[str] = ..., command: _Optional[str] = ..., request_id: _Optional[str] = ..., simulated: bool = ..., ttl_s: _Optional[float] = ..., enforcement: _Optional[str] = ..., usage: _Optional[_Union[LeaseUsage, _Mapping]] = ..., last_active_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[int] = ..., slurm_job: _Optional[str] = ...) -> None: ...

class ProcessUsage(_message.Message):
    __slots__ = ("pid", "gpu_index", "used_mib", "sm_pct", "name", "user")
    PID_FIELD_NUMBER: _ClassVar[int]
    GPU_INDEX_FIELD_NUMBER: _ClassVar[int]
    USED_MIB_FIELD_NUMBER: _ClassVar[int]
    SM_PCT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    pid: int
    gpu_index: int
    used_mib: int
    sm_pct: int
    name: str
    user: str
    def __init__(self, pid: _Optional[int] = ..., gpu_index: _Optional[int] = ..., used_mib: _Optional[int] = ..., sm_pct: _Optional[int] = ..., name: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class LeaseUsage(_message.Message):
    __slots__ = ("used_mib", "sm_pct", "processes", "sampled_at", "over_limit_since", "ends_at")
    USED_MIB_FIELD_NUMBER: _ClassVar[int]
    SM_PCT_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_SINCE_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    used_mib: int
    sm_pct: int
    processes: _containers.RepeatedCompositeFieldContainer[ProcessUsage]
    sampled_at: _timestamp_pb2.Timestamp
    over_limit_since: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    def __init__(self, used_mib: _Optional[int] = ..., sm_pct: _Optional[int] = ..., processes: _Optional[_Iterable[_Union[ProcessUsage, _Mapping]]] = ..., sampled_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., over_limit_since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Partition(_message.Message):
    __slots__ = ("lease_id", "owner", "memory_mib", "compute_pct")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_PCT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    owner: str
    memory_mib: int
    compute_pct: int
    def __init__(self, lease_id: _Optional[str] = ..., owner: _Optional[str] = ..., memory_mib: _Optional[int] = ..., compute_pct: _Optional[int] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "uuid", "name", "backend", "simulated", "total_mib", "reserved_mib", "capacity_mib", "granted_mib", "free_mib", "granted_compute_pct", "drained", "partitions", "used_mib", "utilization_pct", "temperature_c", "power_w", "mps", "unleased")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MIB_FIELD_NUMBER: _ClassVar[int]
    RESERVED_MIB_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MIB_FIELD_NUMBER: _ClassVar[int]
    GRANTED_MIB_FIELD_NUMBER: _ClassVar[int]
    FREE_MIB_FIELD_NUMBER: _ClassVar[int]
    GRANTED_COMPUTE_PCT_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    USED_MIB_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PCT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    MPS_FIELD_NUMBER: _ClassVar[int]
    UNLEASED_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    name: str
    backend: str
    simulated: bool
    total_mib: int
    reserved_mib: int
    capacity_mib: int
    granted_mib: int
    free_mib: int
    granted_compute_pct: int
    drained: bool
    partitions: _containers.RepeatedCompositeFieldContainer[Partition]
    used_mib: int
    utilization_pct: int
    temperature_c: int
    power_w: float
    mps: bool
    unleased: _containers.RepeatedCompositeFieldContainer[ProcessUsage]
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., backend: _Optional[str] = ..., simulated: bool = ..., total_mib: _Optional[int] = ..., reserved_mib: _Optional[int] = ..., capacity_mib: _Optional[int] = ..., granted_mib: _Optional[int] = ..., free_mib: _Optional[int] = ..., granted_compute_pct: _Optional[int] = ..., drained: bool = ..., partitions: _Optional[_Iterable[_Union[Partition, _Mapping]]] = ..., used_mib: _Optional[int] = ..., utilization_pct: _Optional[int] = ..., temperature_c: _Optional[int] = ..., power_w: _Optional[float] = ..., mps: bool = ..., unleased: _Optional[_Iterable[_Union[ProcessUsage, _Mapping]]] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "api_version", "backend", "simulated", "hostname", "caller", "caller_role", "lease_ttl_s", "gpu_count", "started_at", "mps", "simgpu_directory", "watchdog", "grace_s")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLER_ROLE_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MPS_FIELD_NUMBER: _ClassVar[int]
    SIMGPU_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    WATCHDOG_FIELD_NUMBER: _ClassVar[int]
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    backend: str
    simulated: bool
    hostname: str
    caller: str
    caller_role: Role
    lease_ttl_s: float
    gpu_count: int
    started_at: _timestamp_pb2.Timestamp
    mps: bool
    simgpu_directory: str
    watchdog: str
    grace_s: float
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., backend: _Optional[str] = ..., simulated: bool = ..., hostname: _Optional[str] = ..., caller: _Optional[str] = ..., caller_role: _Optional[_Union[Role, str]] = ..., lease_ttl_s: _Optional[float] = ..., gpu_count: _Optional[int] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., mps: bool = ..., simgpu_directory: _Optional[str] = ..., watchdog: _Optional[str] = ..., grace_s: _Optional[float] = ...) -> None: ...

class RequestLeaseRequest(_message.Message):
    __slots__ = ("request_id", "spec", "client_host", "command", "owner_user", "slurm_job")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    OWNER_USER_FIELD_NUMBER: _ClassVar[int]
    SLURM_JOB_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    spec: LeaseSpec
    client_host: str
    command: str
    owner_user: str
    slurm_job: str
    def __init__(self, request_id: _Optional[str] = ..., spec: _Optional[_Union[LeaseSpec, _Mapping]] = ..., client_host: _Optional[str] = ..., command: _Optional[str] = ..., owner_user: _Optional[str] = ..., slurm_job: _Optional[str] = ...) -> None: ...

class LeaseRef(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("lease_ids",)
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    lease_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lease_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[Lease]
    def __init__(self, leases: _Optional[_Iterable[_Union[Lease, _Mapping]]] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("lease_id", "cpu_seconds", "pids", "agent")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    cpu_seconds: float
    pids: _containers.RepeatedScalarFieldContainer[int]
    agent: bool
    def __init__(self, lease_id: _Optional[str] = ..., cpu_seconds: _Optional[float] = ..., pids: _Optional[_Iterable[int]] = ..., agent: bool = ...) -> None: ...

class LeaseEvent(_message.Message):
    __slots__ = ("kind", "lease", "message")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[LeaseEvent.Kind]
        KIND_SNAPSHOT: _ClassVar[LeaseEvent.Kind]
        KIND_QUEUE_MOVED: _ClassVar[LeaseEvent.Kind]
        KIND_GRANTED: _ClassVar[LeaseEvent.Kind]
        KIND_RESIZED: _ClassVar[LeaseEvent.Kind]
        KIND_ENDED: _ClassVar[LeaseEvent.Kind]
        KIND_WARNING: _ClassVar[LeaseEvent.Kind]
    KIND_UNSPECIFIED: LeaseEvent.Kind
    KIND_SNAPSHOT: LeaseEvent.Kind
    KIND_QUEUE_MOVED: LeaseEvent.Kind
    KIND_GRANTED: LeaseEvent.Kind
    KIND_RESIZED: LeaseEvent.Kind
    KIND_ENDED: LeaseEvent.Kind
    KIND_WARNING: LeaseEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: LeaseEvent.Kind
    lease: Lease
    message: str
    def __init__(self, kind: _Optional[_Union[LeaseEvent.Kind, str]] = ..., lease: _Optional[_Union[Lease, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class ListLeasesRequest(_message.Message):
    __slots__ = ("include_ended", "slurm_job")
    INCLUDE_ENDED_FIELD_NUMBER: _ClassVar[int]
    SLURM_JOB_FIELD_NUMBER: _ClassVar[int]
    include_ended: bool
    slurm_job: str
    def __init__(self, include_ended: bool = ..., slurm_job: _Optional[str] = ...) -> None: ...

class ListLeasesResponse(_message.Message):
    __slots__ = ("leases",)
    LEASES_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[Lease]
    def __init__(self, leases: _Optional[_Iterable[_Union[Lease, _Mapping]]] = ...) -> None: ...

class ListGpusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGpusResponse(_message.Message):
    __slots__ = ("gpus",)
    GPUS_FIELD_NUMBER: _ClassVar[int]
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    def __init__(self, gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResizeLeaseRequest(_message.Message):
    __slots__ = ("lease_id", "fraction", "memory_mib")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    fraction: float
    memory_mib: int
    def __init__(self, lease_id: _Optional[str] = ..., fraction: _Optional[float] = ..., memory_mib: _Optional[int] = ...) -> None: ...

class RevokeLeaseRequest(_message.Message):
    __slots__ = ("lease_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    reason: str
    def __init__(self, lease_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetPriorityRequest(_message.Message):
    __slots__ = ("lease_id", "priority")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    priority: int
    def __init__(self, lease_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class GpuRef(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class WatchTelemetryRequest(_message.Message):
    __slots__ = ("min_interval_s",)
    MIN_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    min_interval_s: float
    def __init__(self, min_interval_s: _Optional[float] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("at", "kind", "lease_id", "detail", "actor")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    kind: str
    lease_id: str
    detail: str
    actor: str
    def __init__(self, at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., lease_id: _Optional[str] = ..., detail: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("limit", "lease_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    lease_id: str
    def __init__(self, limit: _Optional[int] = ..., lease_id: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class TelemetrySnapshot(_message.Message):
    __slots__ = ("server", "gpus", "leases", "version")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    server: ServerInfo
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    leases: _containers.RepeatedCompositeFieldContainer[Lease]
    version: int
    def __init__(self, server: _Optional[_Union[ServerInfo, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., leases: _Optional[_Iterable[_Union[Lease, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class RemoteOpen(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class RNone(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RSlice(_message.Message):
    __slots__ = ("start", "stop", "step")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    start: RValue
    stop: RValue
    step: RValue
    def __init__(self, start: _Optional[_Union[RValue, _Mapping]] = ..., stop: _Optional[_Union[RValue, _Mapping]] = ..., step: _Optional[_Union[RValue, _Mapping]] = ...) -> None: ...

class RList(_message.Message):
    __slots__ = ("items", "tuple")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TUPLE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RValue]
    tuple: bool
    def __init__(self, items: _Optional[_Iterable[_Union[RValue, _Mapping]]] = ..., tuple: bool = ...) -> None: ...

class RComplex(_message.Message):
    __slots__ = ("real", "imag")
    REAL_FIELD_NUMBER: _ClassVar[int]
    IMAG_FIELD_NUMBER: _ClassVar[int]
    real: float
    imag: float
    def __init__(self, real: _Optional[float] = ..., imag: _Optional[float] = ...) -> None: ...

class RHostArray(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RValue(_message.Message):
    __slots__ = ("handle", "float", "int", "bool", "complex", "str", "none", "list", "slice", "ellipsis", "dtype", "array", "newaxis", "torch")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    INT_FIELD_NUMBER: _ClassVar[int]
    BOOL_FIELD_NUMBER: _ClassVar[int]
    COMPLEX_FIELD_NUMBER: _ClassVar[int]
    STR_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    SLICE_FIELD_NUMBER: _ClassVar[int]
    ELLIPSIS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    NEWAXIS_FIELD_NUMBER: _ClassVar[int]
    TORCH_FIELD_NUMBER: _ClassVar[int]
    handle: int
    float: float
    int: int
    bool: bool
    complex: RComplex
    str: str
    none: RNone
    list: RList
    slice: RSlice
    ellipsis: RNone
    dtype: str
    array: RHostArray
    newaxis: RNone
    torch: str
    def __init__(self, handle: _Optional[int] = ..., float: _Optional[float] = ..., int: _Optional[int] = ..., bool: bool = ..., complex: _Optional[_Union[RComplex, _Mapping]] = ..., str: _Optional[str] = ..., none: _Optional[_Union[RNone, _Mapping]] = ..., list: _Optional[_Union[RList, _Mapping]] = ..., slice: _Optional[_Union[RSlice, _Mapping]] = ..., ellipsis: _Optional[_Union[RNone, _Mapping]] = ..., dtype: _Optional[str] = ..., array: _Optional[_Union[RHostArray, _Mapping]] = ..., newaxis: _Optional[_Union[RNone, _Mapping]] = ..., torch: _Optional[str] = ...) -> None: ...

class RMeta(_message.Message):
    __slots__ = ("shape", "dtype")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ...) -> None: ...

class ROp(_message.Message):
    __slots__ = ("kind", "name", "args", "kwargs", "out", "expect", "meta", "direct", "results")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ROp.Kind]
        KIND_CALL: _ClassVar[ROp.Kind]
        KIND_METHOD: _ClassVar[ROp.Kind]
        KIND_GETITEM: _ClassVar[ROp.Kind]
        KIND_SETITEM: _ClassVar[ROp.Kind]
        KIND_UPLOAD: _ClassVar[ROp.Kind]
        KIND_DOWNLOAD: _ClassVar[ROp.Kind]
        KIND_FREE: _ClassVar[ROp.Kind]
        KIND_KERNEL: _ClassVar[ROp.Kind]
        KIND_LAUNCH: _ClassVar[ROp.Kind]
        KIND_QUERY: _ClassVar[ROp.Kind]
        KIND_ATEN: _ClassVar[ROp.Kind]
    KIND_UNSPECIFIED: ROp.Kind
    KIND_CALL: ROp.Kind
    KIND_METHOD: ROp.Kind
    KIND_GETITEM: ROp.Kind
    KIND_SETITEM: ROp.Kind
    KIND_UPLOAD: ROp.Kind
    KIND_DOWNLOAD: ROp.Kind
    KIND_FREE: ROp.Kind
    KIND_KERNEL: ROp.Kind
    KIND_LAUNCH: ROp.Kind
    KIND_QUERY: ROp.Kind
    KIND_ATEN: ROp.Kind
    class KwargsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: RValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[RValue, _Mapping]] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    KWARGS_FIELD_NUMBER: _ClassVar[int]
    OUT_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    kind: ROp.Kind
    name: str
    args: _containers.RepeatedCompositeFieldContainer[RValue]
    kwargs: _containers.MessageMap[str, RValue]
    out: _containers.RepeatedScalarFieldContainer[int]
    expect: _containers.RepeatedCompositeFieldContainer[RMeta]
    meta: RMeta
    direct: bool
    results: str
    def __init__(self, kind: _Optional[_Union[ROp.Kind, str]] = ..., name: _Optional[str] = ..., args: _Optional[_Iterable[_Union[RValue, _Mapping]]] = ..., kwargs: _Optional[_Mapping[str, RValue]] = ..., out: _Optional[_Iterable[int]] = ..., expect: _Optional[_Iterable[_Union[RMeta, _Mapping]]] = ..., meta: _Optional[_Union[RMeta, _Mapping]] = ..., direct: bool = ..., results: _Optional[str] = ...) -> None: ...

class RBatch(_message.Message):
    __slots__ = ("ops", "sync", "seq")
    OPS_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[ROp]
    sync: bool
    seq: int
    def __init__(self, ops: _Optional[_Iterable[_Union[ROp, _Mapping]]] = ..., sync: bool = ..., seq: _Optional[int] = ...) -> None: ...

class RChunk(_message.Message):
    __slots__ = ("handle", "offset", "data")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    handle: int
    offset: int
    data: bytes
    def __init__(self, handle: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class RemoteRequest(_message.Message):
    __slots__ = ("open", "batch", "chunk")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    open: RemoteOpen
    batch: RBatch
    chunk: RChunk
    def __init__(self, open: _Optional[_Union[RemoteOpen, _Mapping]] = ..., batch: _Optional[_Union[RBatch, _Mapping]] = ..., chunk: _Optional[_Union[RChunk, _Mapping]] = ...) -> None: ...

class RError(_message.Message):
    __slots__ = ("type", "message", "op_index", "op_name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OP_INDEX_FIELD_NUMBER: _ClassVar[int]
    OP_NAME_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    op_index: int
    op_name: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., op_index: _Optional[int] = ..., op_name: _Optional[str] = ...) -> None: ...

class RResult(_message.Message):
    __slots__ = ("seq", "values", "metas", "error", "device_used_bytes", "device_limit_bytes")
    class MetasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: RMeta
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[RMeta, _Mapping]] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    METAS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DEVICE_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    values: _containers.RepeatedCompositeFieldContainer[RValue]
    metas: _containers.MessageMap[int, RMeta]
    error: RError
    device_used_bytes: int
    device_limit_bytes: int
    def __init__(self, seq: _Optional[int] = ..., values: _Optional[_Iterable[_Union[RValue, _Mapping]]] = ..., metas: _Optional[_Mapping[int, RMeta]] = ..., error: _Optional[_Union[RError, _Mapping]] = ..., device_used_bytes: _Optional[int] = ..., device_limit_bytes: _Optional[int] = ...) -> None: ...

class RSession(_message.Message):
    __slots__ = ("data_socket", "secret", "data_port", "data_route", "data_tls")
    DATA_SOCKET_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    DATA_PORT_FIELD_NUMBER: _ClassVar[int]
    DATA_ROUTE_FIELD_NUMBER: _ClassVar[int]
    DATA_TLS_FIELD_NUMBER: _ClassVar[int]
    data_socket: str
    secret: bytes
    data_port: int
    data_route: bytes
    data_tls: bool
    def __init__(self, data_socket: _Optional[str] = ..., secret: _Optional[bytes] = ..., data_port: _Optional[int] = ..., data_route: _Optional[bytes] = ..., data_tls: bool = ...) -> None: ...

class RemoteReply(_message.Message):
    __slots__ = ("result", "chunk", "session")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    result: RResult
    chunk: RChunk
    session: RSession
    def __init__(self, result: _Optional[_Union[RResult, _Mapping]] = ..., chunk: _Optional[_Union[RChunk, _Mapping]] = ..., session: _Optional[_Union[RSession, _Mapping]] = ...) -> None: ...
