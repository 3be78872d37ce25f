"""What every fuse-ros node shares: parameters from config dataclasses, QoS, diagnostics, main()."""

from __future__ import annotations

import dataclasses
import faulthandler
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from fuse_core.config import validate
from fuse_core.errors import ConfigError

C = TypeVar('C')

# --- QoS ------------------------------------------------------------------------------------
#: Sensor streams: best effort, keep last 5. A sensor-data subscriber also accepts a reliable
#: publisher (e.g. a bag player), while a reliable subscriber would get nothing from these.
SENSOR_QOS = qos_profile_sensor_data
#: The control path (windows, chunks, commands): reliable, newest only. A command that cannot
#: be delivered in time is worthless, so nothing queues behind it.
CONTROL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
#: Latched state (DIGIT backgrounds, instruction): late joiners get the last value.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: Status and joint states: reliable, a small queue.
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)


# --- time -----------------------------------------------------------------------------------
def ns_to_time(ns: int) -> TimeMsg:
    """Nanoseconds since the epoch -> builtin_interfaces/Time."""
    return TimeMsg(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def time_to_ns(t: TimeMsg) -> int:
    """builtin_interfaces/Time -> nanoseconds since the epoch."""
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


class SensorStamp:
    """The one stamp policy of every sensor node: a sample's capture time, or under
    ``use_sim_time`` the node clock at the moment the sample reaches the node.

    Capture times are wall-clock; under simulated time (a bag or the twin publishing
    ``/clock``) a wall-clock stamp would look hours stale to every consumer, so the capture
    moment is expressed on the node clock instead. ``stamp(capture_ns)`` returns the header
    stamp of a sample captured at ``capture_ns`` (wall ns).
    """

    def __init__(self, node: Node) -> None:
        self._clock = node.get_clock()
        self.sim_time = bool(node.get_parameter('use_sim_time').value)

    def __call__(self, capture_ns: int) -> TimeMsg:
        if self.sim_time:
            return self._clock.now().to_msg()
        return ns_to_time(capture_ns)

    def derived(self, capture_ns: int, sample_stamp: Optional[TimeMsg] = None) -> TimeMsg:
        """The stamp of data computed from samples (a spectrogram) whose newest was captured at
        ``capture_ns``: under use_sim_time the stamp that sample was published with where it is
        known (``sample_stamp``), so both say the same time; else as ``stamp(capture_ns)``.
        """
        if self.sim_time and sample_stamp is not None:
            return sample_stamp
        return self(capture_ns)


# --- logging --------------------------------------------------------------------------------
def log_at(logger: Any, level: str, message: str) -> None:
    """Log `message` at `level` ('info', 'warn' or anything else for error) on an rclpy logger."""
    # rclpy refuses one call site logging at changing severities, hence one call per severity.
    if level == 'info':
        logger.info(message)
    elif level == 'warn':
        logger.warning(message)
    else:
        logger.error(message)


# --- parameters -----------------------------------------------------------------------------
def declare_config(node: Node, cls: Type[C], prefix: str = '',
                   defaults: Optional[Mapping[str, Any]] = None) -> C:
    """Declare one ROS parameter per field of config dataclass `cls` and build the config.

    Parameter names, defaults, descriptions and ranges come from the dataclass, so the node,
    its YAML file and the core share one definition. `prefix` namespaces the parameters (the
    sync node's ``streams.<name>.``); `defaults` replaces the dataclass default of the fields
    it names (a stream's own topics). A bad value raises ConfigError naming the parameter;
    the node's main() turns that into a clear start-up failure.
    """
    values: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if defaults is not None and f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            raise ConfigError(f'{cls.__name__}.{f.name} has no default')
        meta = f.metadata
        desc = ParameterDescriptor(description=meta.get('description', ''),
                                   read_only=bool(meta.get('read_only', True)))
        lo, hi = meta.get('min'), meta.get('max')
        if isinstance(default, bool) or (lo is None and hi is None):
            pass
        elif isinstance(default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo if lo is not None else -2**31),
                                               to_value=int(hi if hi is not None else 2**31 - 1),
                                               step=0)]
        elif isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(lo if lo is not None else -1e300),
                to_value=float(hi if hi is not None else 1e300), step=0.0)]
        if meta.get('choices'):
            desc.additional_constraints = f'one of {list(meta["choices"])}'
        name = prefix + f.name
        if isinstance(default, list) and not default:
            # An empty list has no element type: declare it dynamically typed, so a YAML list
            # of any type is accepted, and read "unset" back as the empty default.
            desc.dynamic_typing = True
            value = node.declare_parameter(name, None, desc).value
            value = [] if value is None else value
        else:
            try:
                value = node.declare_parameter(name, default, desc).value
            except Exception as exc:  # out-of-range values are rejected here by rclpy
                raise ConfigError(f'{node.get_name()}: parameter {name!r}: {exc}') from exc
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        if isinstance(default, list) and not isinstance(value, list):
            value = list(value)
        values[f.name] = value
    try:
        cfg = cls(**values)
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f'{node.get_name()}: {exc}') from exc
    return cfg


# --- diagnostics ----------------------------------------------------------------------------
StatusFn = Callable[[], Tuple[int, str, Dict[str, Any]]]

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


class Diagnostics:
    """Publishes one DiagnosticStatus per registered task on /diagnostics at a fixed period."""

    def __init__(self, node: Node, period_s: float = 1.0, hardware_id: str = '') -> None:
        self._node = node
        self._hardware_id = hardware_id
        self._tasks: List[Tuple[str, StatusFn]] = []
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period_s, self.publish)

    def add(self, name: str, fn: StatusFn) -> None:
        """Register a status function returning (level, message, {key: value})."""
        self._tasks.append((name, fn))

    def publish(self) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self._node.get_clock().now().to_msg()
        for name, fn in self._tasks:
            try:
                level, message, values = fn()
            except Exception as exc:  # a broken status function must not kill the node
                level, message, values = ERROR, f'status failed: {exc}', {}
            st = DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level,
                                  name=f'{self._node.get_name()}: {name}', message=message,
                                  hardware_id=self._hardware_id)
            st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
            arr.status.append(st)
        self._pub.publish(arr)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.4g}'
    return str(v)


# --- entry point ----------------------------------------------------------------------------
#: Seconds a node may take to shut down before it reports where it is stuck.
SHUTDOWN_REPORT_S = 5.0


def run_node(factory: Callable[[], Node], args: Optional[List[str]] = None,
             multithreaded: bool = False) -> int:
    """The one main() idiom of every node: init, build, spin, clean shutdown on Ctrl-C/SIGTERM.

    Ctrl-C and SIGTERM only set a flag that the spin loop checks between callbacks, so a
    callback is never cut off halfway (a bag record half written, a command half sent);
    the node's close() then runs once. A ConfigError while building the node is printed as
    one clear line and exits with 2; a node that stops itself after a fatal error sets
    `exit_code` (non-zero) before shutting its context down.

    The executor, chosen by each node's main() (`multithreaded`):

    - MultiThreadedExecutor, only where one callback must run while another is busy, each
      node putting its callbacks into callback groups for that: the arm (a command flood
      must not starve the control loop, joint states, status or the e-stop), the policy
      (services and diagnostics answer during an inference) and the expert (world-reset and
      move-to-start responses arrive while its 5 Hz tick runs).
    - SingleThreadedExecutor everywhere else (the default): the callbacks are short, and the
      slow or blocking work runs on the node's own thread (sensor acquisition, bag playback)
      or on a timer. rclpy's MultiThreadedExecutor polls in a busy loop (measured in the sync
      node: 70-80 % of a core, ticks stalled by up to 1 s), so it is not the default.
    """
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    node = None
    executor = MultiThreadedExecutor() if multithreaded else SingleThreadedExecutor()
    code = 0
    try:
        node = factory()
        executor.add_node(node)
        # The timeout bounds how long a stop request waits for an idle executor.
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ConfigError as exc:
        print(f'[fuse] configuration error: {exc}', file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        # A shutdown that hangs is a bug to find, not a process to kill blindly: after
        # SHUTDOWN_REPORT_S every thread's stack goes to stderr (the node's log).
        faulthandler.dump_traceback_later(SHUTDOWN_REPORT_S, exit=False)
        # Callbacks still running on executor threads finish before close() touches what they use.
        executor.shutdown(timeout_sec=SHUTDOWN_REPORT_S)
        if node is not None:
            code = code or int(getattr(node, 'exit_code', 0) or 0)
            close = getattr(node, 'close', None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # report, but keep shutting down
                    print(f'[fuse] error while closing {node.get_name()}: {exc}',
                          file=sys.stderr, flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()
    return code
