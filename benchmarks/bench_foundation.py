"""All sensor-side figures in one run: spectrogram, image conversion, sensor CPU, DDS latency.

Runs, one after the other in this process's interpreter:
  bench_spectrogram.py    log-mel per 0.3 s window, ours vs librosa
  bench_conversions.py    numpy <-> sensor_msgs/Image, serialisation
  bench_sensors_cpu.py    CPU of the six sensor processes at real rates, synthetic sources
  bench_dds.py            640x480 latency between processes, project DDS settings vs defaults

    .venv/bin/python benchmarks/bench_foundation.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='shorter runs (less stable figures)')
    args = ap.parse_args()
    runs = [
        ['bench_spectrogram.py'],
        ['bench_conversions.py'],
        ['bench_sensors_cpu.py', '--seconds', '10' if args.quick else '20'],
        ['bench_dds.py', '--seconds', '4' if args.quick else '8'],
    ]
    print(f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start', flush=True)
    failed = []
    for script, *extra in runs:
        print(f'\n=== {script} {" ".join(extra)}', flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(HERE / script), *extra])
        print(f'--- {script}: exit {rc}, {time.monotonic() - t0:.0f} s', flush=True)
        if rc != 0:
            failed.append(script)
    if failed:
        print(f'failed: {failed}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
