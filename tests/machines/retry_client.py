#!/usr/bin/python3
"""tests/drills/client.py with calls that retry, as a real client does.

A call refused, cut off or answered 502/503 is tried again every 50 ms for up
to TM_RETRY_S seconds (default 5); only a call that still fails then counts
as failed. The rolling-upgrade drill promises zero such calls. Same
arguments as client.py."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "drills"))
import client  # noqa: E402

RETRY_S = float(os.environ.get("TM_RETRY_S", "5"))
_once = client.call


def call_retrying(url, method, path, key=None, body=None, timeout=1.0):
    end = time.time() + RETRY_S
    while True:
        st, resp = _once(url, method, path, key, body, timeout)
        if st not in (0, 502, 503) or time.time() >= end:
            return st, resp
        time.sleep(0.05)


client.call = call_retrying

if __name__ == "__main__":
    client.main()
