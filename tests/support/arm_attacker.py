"""A separate process that misuses the arm's interfaces (fault-injection tests and benchmarks).

python arm_attacker.py MODE --name NODE [--rate HZ] [--duration S] [--step DX DY DZ]
  publish   publish DeltaEECommand on /policy/command at RATE (a rogue or a flooding commander)
  forge     publish commands stamped an hour ahead and valid for a year
  services  call reset_estop and move_to_pose; print what they answered
Prints one line: `sent N` or the service answers.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=('publish', 'forge', 'services'))
    ap.add_argument('--name', default='rogue')
    ap.add_argument('--rate', type=float, default=50.0)
    ap.add_argument('--duration', type=float, default=2.0)
    ap.add_argument('--step', type=float, nargs=3, default=(0.0, 0.0, 0.005))
    args = ap.parse_args(argv)

    import rclpy
    from fuse_interfaces.msg import DeltaEECommand
    from fuse_interfaces.srv import MoveToPose
    from rclpy.signals import SignalHandlerOptions
    from std_srvs.srv import Trigger

    from fuse_nodes.common import CONTROL_QOS, ns_to_time

    # Ctrl-C / SIGINT ends a stream early and cleanly (the count is still printed, exit 0).
    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node = rclpy.create_node(args.name)
    try:
        if args.mode == 'services':
            out = []
            for srv_type, name, req in ((Trigger, '/arm/reset_estop', Trigger.Request()),
                                        (MoveToPose, '/arm/move_to_pose', MoveToPose.Request(use_start_pose=True))):
                client = node.create_client(srv_type, name)
                if not client.wait_for_service(timeout_sec=10.0):
                    out.append(f'{name}: unavailable')
                    continue
                fut = client.call_async(req)
                rclpy.spin_until_future_complete(node, fut, timeout_sec=10.0)
                res = fut.result()
                out.append(f'{name}: success={res.success} message={res.message}')
            print(' | '.join(out), flush=True)
            return 0
        pub = node.create_publisher(DeltaEECommand, '/policy/command', CONTROL_QOS)
        time.sleep(0.5)  # discovery
        sent = _stream(pub, args, DeltaEECommand, ns_to_time, stop)
        print(f'sent {sent}', flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _stream(pub, args, DeltaEECommand, ns_to_time, stop: threading.Event) -> int:
    """Publish at args.rate for args.duration (or until `stop`); returns how many were sent."""
    period = 1.0 / args.rate
    sent = 0
    tick = 10_000_000 + int(time.time())  # far ahead of any commander's ticks
    end = time.monotonic() + args.duration
    next_t = time.monotonic()
    while time.monotonic() < end and not stop.is_set():
        now = time.time_ns()
        msg = DeltaEECommand()
        if args.mode == 'forge':
            msg.header.stamp = ns_to_time(now + 3600 * 10**9)
            msg.valid_until = ns_to_time(now + 365 * 86400 * 10**9)
        else:
            msg.header.stamp = ns_to_time(now)
            msg.valid_until = ns_to_time(now + 300_000_000)
        msg.header.frame_id = 'wx250s/base_link'
        msg.tick_index = tick
        msg.translation = [float(v) for v in args.step]
        msg.rotation = [0.0, 0.0, 0.0]
        msg.gripper = 1.0
        pub.publish(msg)
        tick += 1
        sent += 1
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    return sent


if __name__ == '__main__':
    sys.exit(main())
