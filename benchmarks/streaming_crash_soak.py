"""Soak: the streaming crash test at full size (20 SIGKILLs over 100,000 messages, or more).

``make test`` runs ``tests/integration/streaming/test_crash.py`` small (8 kills over 40,000
messages) to stay near a minute; this runs the same test with the issue's figures, or yours::

    python -m benchmarks.streaming_crash_soak            # 20 kills, 100,000 messages
    python -m benchmarks.streaming_crash_soak 50 500000  # kills, messages

It prints the duration and a JSON line; the test asserts every id is in every exactly-once
target exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main() -> None:
    """Run the crash test with the given kills and messages."""
    kills = sys.argv[1] if len(sys.argv) > 1 else "20"
    messages = sys.argv[2] if len(sys.argv) > 2 else "100000"
    env = {**os.environ, "EMATIX_CRASH_KILLS": kills, "EMATIX_CRASH_MESSAGES": messages}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/streaming/test_crash.py", "-k", "exactly_once"],
        env=env, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print(f"crash soak: {kills} kills over {messages} messages: {seconds:.1f} s")
    print(json.dumps({"kills": int(kills), "messages": int(messages), "seconds": round(seconds, 1),
                      "passed": done.returncode == 0}))  # fmt: skip
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
