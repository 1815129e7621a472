#!/usr/bin/python3
"""Drill client: runs in the tandem-client namespace and talks only to the VIP.

  client.py setup --url URL --key KEY [--cacert CA]  publish the drill script and its APIs;
                                                 prints SAPI=, AAPI=, FUNC_CRON= lines
  client.py load --url URL --key KEY --sapi ID --aapi ID --seconds N --out FILE
                                                 sync calls in a loop, async calls, then
                                                 waits for every accepted task
  client.py cert --url https://... --cacert CA   SHA-256 of the certificate served

An https:// URL is verified against --cacert (the lab's test CA): name and
chain, as a real client would; nothing is ever called without verification.

Python stdlib only (Debian's /usr/bin/python3).
"""
import argparse
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse

SCRIPT_ID = "drill__main"
CODE = '''
@DFF.API("drill ping")
def ping():
    return "pong"

@DFF.API("drill async")
def work(n=0):
    return n

@DFF.API("drill cron")
def tick():
    return 1
'''


CONNECT_TIMEOUT = 0.2
TLS_CONTEXT = None  # set from --cacert for https:// URLs


class _HTTPS(http.client.HTTPSConnection):
    """HTTPS whose TCP connect gets CONNECT_TIMEOUT (as plain calls do) and
    whose handshake gets the answer's timeout: the handshake is work on the
    server, not a SYN that may have gone to the wrong node."""

    def __init__(self, host, port, timeout, answer_timeout):
        super().__init__(host, port, timeout=timeout, context=TLS_CONTEXT)
        self.answer_timeout = answer_timeout

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock.settimeout(self.answer_timeout)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def connection(url, timeout):
    u = urllib.parse.urlparse(url)
    if u.scheme == "https":
        return _HTTPS(u.hostname, u.port or 443, min(timeout, CONNECT_TIMEOUT), timeout)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=min(timeout, CONNECT_TIMEOUT))


def call(url, method, path, key=None, body=None, timeout=1.0):
    """One HTTP request. Returns (status, parsed JSON or text); (0, error) on transport failure.

    Connecting gets CONNECT_TIMEOUT, the answer `timeout`: while the VIP moves a
    SYN can go to the node that just let go of it and vanish, and the client
    should retry soon rather than sit out the kernel's 1 s SYN retransmit."""
    conn = connection(url, timeout)
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if key:
        headers["Authorization"] = "Bearer " + key
    try:
        conn.connect()
        conn.sock.settimeout(timeout)
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data.decode("utf-8", "replace")
    except ssl.SSLCertVerificationError as e:  # never an outage: a broken promise
        return -1, "SSLCertVerificationError: %s" % e
    except Exception as e:  # refused, reset, timeout: the outage we measure
        return 0, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()


def must(status, resp, what):
    if status != 200:
        sys.exit("client.py setup: %s failed: HTTP %s %s" % (what, status, resp))
    return resp.get("data") if isinstance(resp, dict) else resp


def find_existing(url, key, kind, func_id):
    st, resp = call(url, "GET", "/api/v1/%s/do/list?funcId=%s" % (kind, func_id), key, timeout=5)
    if st == 200 and isinstance(resp, dict):
        for it in resp.get("data") or []:
            if it.get("funcId") == func_id:
                return it.get("id")
    return None


def cmd_setup(a):
    # DFF's shapes: the set is added unless it exists, the script modified
    # (added when there is none), then published
    set_id = SCRIPT_ID.split("__", 1)[0]
    st, resp = call(a.url, "POST", "/api/v1/script-sets/do/add", a.key, {"data": {"id": set_id}},
                    timeout=10)
    if st != 409:
        must(st, resp, "add script set")
    draft = {"codeDraft": CODE, "title": "failover drills"}
    st, resp = call(a.url, "POST", "/api/v1/scripts/%s/do/modify" % SCRIPT_ID, a.key,
                    {"data": draft}, timeout=10)
    if st == 404:
        st, resp = call(a.url, "POST", "/api/v1/scripts/do/add", a.key,
                        {"data": dict(draft, id=SCRIPT_ID)}, timeout=10)
    must(st, resp, "save script")
    must(*call(a.url, "POST", "/api/v1/scripts/%s/do/publish" % SCRIPT_ID, a.key, {}, timeout=30),
         "publish script")
    ids = {}
    for kind, api, func in (("SAPI", "sync-apis", "ping"), ("AAPI", "async-apis", "work")):
        fid = "%s.%s" % (SCRIPT_ID, func)
        got = find_existing(a.url, a.key, api, fid)
        if not got:
            data = must(*call(a.url, "POST", "/api/v1/%s/do/add" % api, a.key,
                              {"data": {"funcId": fid, "title": "drill"}}, timeout=10),
                        "add " + api)
            got = data.get("id")
        ids[kind] = got
    print("SAPI=%s" % ids["SAPI"])
    print("AAPI=%s" % ids["AAPI"])
    print("FUNC_CRON=%s.tick" % SCRIPT_ID)


def cmd_load(a):
    stop = threading.Event()
    sync_log = []      # (t_start, t_end, status)
    accepted = []      # task ids
    async_fail = [0]
    t0 = time.time()

    def sync_loop():
        while not stop.is_set():
            s = time.time()
            st, resp = call(a.url, "POST", "/api/v1/sync/" + a.sapi, a.key, {"kwargs": {}}, timeout=a.timeout)
            # transport failures are told apart: refused (no listener, or the
            # VIP is between nodes) vs timed out (packets went nowhere)
            sync_log.append((s, time.time(), st if st else "0:" + str(resp).split(":")[0]))
            time.sleep(a.interval)

    def async_loop():
        n = 0
        while not stop.is_set():
            n += 1
            st, resp = call(a.url, "POST", "/api/v1/async/" + a.aapi, a.key, {"kwargs": {"n": n}},
                            timeout=a.timeout)
            tid = None
            if st == 200 and isinstance(resp, dict):
                d = resp.get("data")
                tid = d.get("id") if isinstance(d, dict) else None
            if tid:
                accepted.append(tid)
            else:
                async_fail[0] += 1
            time.sleep(a.async_interval)

    # several sync loops: a call stuck on a frozen node must not hide the
    # moment the service came back (outage = gap between any two successes)
    th = [threading.Thread(target=sync_loop) for _ in range(a.sync_threads)]
    th.append(threading.Thread(target=async_loop))
    for t in th:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in th:
        t.join()
    t_load_end = time.time()

    # every accepted task must finish; pending ones are polled until settle
    pending = set(accepted)
    done, failed = {}, {}
    deadline = time.time() + a.settle
    while pending and time.time() < deadline:
        for tid in list(pending):
            st, resp = call(a.url, "GET", "/api/v1/tasks/" + tid, a.key, timeout=2)
            if st != 200 or not isinstance(resp, dict):
                continue
            d = resp.get("data") or {}
            status = d.get("status")
            if status == "success":
                done[tid] = status
                pending.discard(tid)
            elif status in ("failure", "timeout", "crashed", "expired"):
                failed[tid] = status
                pending.discard(tid)
        if pending:
            time.sleep(0.5)

    oks = sorted(e for (_, e, st) in sync_log if st == 200)
    gaps = [b - a_ for a_, b in zip(oks, oks[1:])]
    longest, at = 0.0, None
    for (x, y) in zip(oks, oks[1:]):
        if y - x > longest:
            longest, at = y - x, x
    codes = {}
    for (_, _, st) in sync_log:
        codes[str(st)] = codes.get(str(st), 0) + 1
    rep = {
        "t0": t0, "t_load_end": t_load_end,
        "sync_calls": len(sync_log), "sync_ok": len(oks), "sync_failed": len(sync_log) - len(oks),
        "sync_codes": codes,
        # when each failed call started and ended, to set beside the fault's log
        "sync_failures": [[round(s_, 3), round(e_, 3), str(st)] for (s_, e_, st) in sync_log if st != 200][:50],
        "outage_ms": int(longest * 1000), "outage_at": at,
        "median_gap_ms": int(sorted(gaps)[len(gaps) // 2] * 1000) if gaps else None,
        "async_accepted": len(accepted), "async_refused": async_fail[0],
        "async_completed": len(done), "async_failed": failed, "async_lost": sorted(pending),
    }
    with open(a.out, "w") as f:
        json.dump(rep, f)
    print(json.dumps(rep))


def cmd_cert(a):
    """The SHA-256 of the certificate the VIP serves, after verification."""
    import hashlib
    conn = connection(a.url, 5)
    try:
        conn.connect()
        print(hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest())
    except Exception as e:
        sys.exit("client.py cert: %s: %s: %s" % (a.url, type(e).__name__, e))
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--url", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--cacert")
    l = sub.add_parser("load")
    l.add_argument("--url", required=True)
    l.add_argument("--key", required=True)
    l.add_argument("--sapi", required=True)
    l.add_argument("--aapi", required=True)
    l.add_argument("--seconds", type=float, default=20)
    l.add_argument("--interval", type=float, default=0.05)
    l.add_argument("--sync-threads", type=int, default=3)
    l.add_argument("--async-interval", type=float, default=0.2)
    l.add_argument("--timeout", type=float, default=1.0)
    l.add_argument("--settle", type=float, default=90)
    l.add_argument("--out", required=True)
    l.add_argument("--cacert")
    c = sub.add_parser("cert")
    c.add_argument("--url", required=True)
    c.add_argument("--cacert")
    a = p.parse_args()
    if a.url.startswith("https://"):
        if not a.cacert:
            p.error("an https:// URL needs --cacert (the CA to verify the server with)")
        global TLS_CONTEXT
        TLS_CONTEXT = ssl.create_default_context(cafile=a.cacert)
    {"setup": cmd_setup, "load": cmd_load, "cert": cmd_cert}[a.cmd](a)


if __name__ == "__main__":
    main()
