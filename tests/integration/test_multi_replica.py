"""The multi-replica deployment: two tandem-servers and two tandem-workers on
one backend work together, and "accepted means done" holds across a SIGKILL
of every worker followed by a restart of the whole stack."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BUILD, Stack, free_port, have_binaries, wait_for  # noqa: E402

CODE = r'''
import os, time

@DFF.API('Who', timeout=10)
def who(i):
    time.sleep(0.01)  # long enough that both workers get a share
    return {'i': i, 'pid': os.getpid()}

@DFF.API('Slowish', timeout=30)
def slowish(i):
    time.sleep(0.2)
    return i
'''


def replica_conf(st, node, port):
    """A second node's config on the same backend: own name, port, run dir."""
    with open(st.conf) as f:
        text = f.read()
    run = os.path.join(st.dir, "run-" + node)
    os.makedirs(run, exist_ok=True)
    text = re.sub(r'node = \{ name = "[^"]*"; \};', f'node = {{ name = "{node}"; }};', text)
    text = re.sub(r'(server = \{ listen = "127.0.0.1"; port = )\d+;', rf'\g<1>{port};', text)
    text = re.sub(r'run = "[^"]*";', f'run = "{run}";', text)
    path = os.path.join(st.dir, f"tandem-{node}.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


@unittest.skipUnless(have_binaries("tandem-server", "tandem-worker", "tandemctl"), "not built")
class MultiReplica(unittest.TestCase):
    def setUp(self):
        self.st = Stack(name="multi", workers=1).up()
        self.st.push_script("mr__app", CODE)
        self.extra = []

    def tearDown(self):
        for p in self.extra:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.st.down()

    def spawn(self, binary, conf):
        log = open(os.path.join(self.st.dir, "log", f"{binary}-{len(self.extra)}.log"), "w")
        p = subprocess.Popen([os.path.join(BUILD, "bin", binary), "-c", conf],
                             stdout=log, stderr=subprocess.STDOUT)
        self.extra.append(p)
        return p

    def test_two_servers_and_two_workers_on_one_backend_share_the_work(self):
        port2 = free_port()
        conf2 = replica_conf(self.st, "replica-b", port2)
        self.spawn("tandem-worker", conf2)
        self.spawn("tandem-server", conf2)
        second = Stack.__new__(Stack)  # the same stack, seen through server two
        second.__dict__.update(self.st.__dict__, url=f"http://127.0.0.1:{port2}", port=port2)
        wait_for(lambda: second.http("GET", "/api/v1/do/ping", key=None)[0] == 200,
                 15, what="the second server")
        wait_for(lambda: len(self.st.redis("KEYS", "tandem:hb:worker:*").split()) >= 2,
                 15, what="both workers' heartbeats")

        results, lock = [], threading.Lock()

        def client(st, n, off):
            for i in range(n):
                r = st.http("POST", "/api/v1/func/mr__app.who", {"kwargs": {"i": off + i}})
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=client, args=(base, 40, k * 1000))
                   for k, base in enumerate([self.st, second, self.st, second])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 160)
        for status, body in results:
            self.assertEqual(status, 200, body)
        # every task ran once and both workers (nodes) took part
        wait_for(lambda: int(self.st.sql(
            "SELECT COUNT(*) FROM task_record WHERE func_id='mr__app.who'")[0][0]) >= 160,
            20, what="task records flushed")
        rows = self.st.sql("SELECT node, COUNT(*), COUNT(DISTINCT id) FROM task_record "
                           "WHERE func_id='mr__app.who' GROUP BY node")
        per_node = {}
        for node, n, distinct in rows:
            self.assertEqual(n, distinct, f"a task ran twice on {node}")
            per_node[node] = int(n)
        self.assertEqual(sum(per_node.values()), 160, per_node)
        self.assertEqual(set(per_node), {"local", "replica-b"}, per_node)
        self.assertTrue(all(n > 0 for n in per_node.values()), per_node)

    def test_accepted_async_tasks_run_after_every_worker_is_sigkilled_and_the_stack_restarts(self):
        ids = []
        for i in range(30):
            status, body = self.st.http("POST", "/api/v1/func/mr__app.slowish",
                                        {"kwargs": {"i": i}, "options": {"async": True}})
            self.assertEqual(status, 200, body)
            ids.append(body["data"]["id"])
        # right after acceptance: SIGKILL the worker master and every child
        pids = subprocess.run(["pgrep", "-f", f"tandem-worker -c {self.st.conf}"],
                              capture_output=True, text=True).stdout.split()
        self.assertTrue(pids, "no worker process found")
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        # then the whole stack is restarted: server, worker, redis, mariadb
        subprocess.run([harness.LOCAL, "down", "--dir", self.st.dir], check=True,
                       capture_output=True, timeout=120)
        self.st.up()

        def all_done():
            done = 0
            for t in ids:
                status, body = self.st.http("GET", f"/api/v1/tasks/{t}", key=None)
                if status == 200 and body["data"].get("status") == "success":
                    done += 1
            return done == len(ids) or None
        wait_for(all_done, 60, 0.5, "every accepted task to run")


if __name__ == "__main__":
    unittest.main(verbosity=2)
