"""What one task leaves behind does not reach the next (issue 10, defect 7):
processes it started die with its timeout (also those that left its process
group), user code's forks do not inherit the slot the master reads, a thread it
started does not print into the next task's output, and publishing
(__sys.inspect) runs a script's top-level code in a throwaway process, not
in the interpreter that serves calls. One worker child, so "the next task"
runs where the last one did."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, have_binaries, wait_for  # noqa: E402

CODE = r'''
import os, subprocess, threading, time

@DFF.API('Spawn and hang', timeout=2)
def spawn(path):
    same = subprocess.Popen(['sleep', '300'])
    away = subprocess.Popen(['sleep', '301'], start_new_session=True)
    with open(path, 'w') as f:
        f.write('%d %d' % (same.pid, away.pid))
    while True:
        time.sleep(0.1)

@DFF.API('What a child process of user code inherits')
def inherit(path):
    os.system('cat /proc/self/maps > %s 2>/dev/null' % path)
    with open(path) as f:
        shelled = 'tandem-worker-slots' in f.read()
    with open('/proc/self/maps') as f:
        own = f.read().count('tandem-worker-slots')
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        with open('/proc/self/maps') as f:
            os.write(w, b'mapped' if 'tandem-worker-slots' in f.read() else b'absent')
        os._exit(0)
    os.waitpid(pid, 0)
    forked = os.read(r, 16).decode()
    return {'shelled': shelled, 'own': own, 'forked': forked}

@DFF.API('Leave a chatty thread')
def chatty():
    def talk():
        for _ in range(60):
            print('STRAY from an earlier task')
            time.sleep(0.05)
    threading.Thread(target=talk, daemon=True).start()
    print('chatty started')
    return 'started'

@DFF.API('Quiet')
def quiet():
    print('mine')
    time.sleep(0.6)
    return 'quiet'

@DFF.API('Poisoned?')
def poisoned():
    import json
    return hasattr(json, 'TANDEM_POISON')
'''

POISON = r'''
import json
json.TANDEM_POISON = True  # top-level code: runs at publish (inspect)

@DFF.API('Nothing')
def nothing():
    return 1
'''


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@unittest.skipUnless(have_binaries("tandem-server", "tandem-worker", "tandemctl"), "not built")
class WorkerIsolation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="wiso", workers=1).up()
        cls.st.push_script("demo__iso", CODE)

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def call(self, func, kwargs=None):
        return self.st.http("POST", "/api/v1/func/demo__iso." + func, {"kwargs": kwargs or {}})

    def test_processes_a_task_started_die_with_its_timeout(self):
        path = os.path.join(self.st.dir, "spawned")
        status, r = self.call("spawn", {"path": path})
        self.assertEqual(status, 599, r)
        self.assertEqual(r["reason"], "EFuncTimeout", r)
        with open(path) as f:
            same, away = map(int, f.read().split())
        try:
            wait_for(lambda: not alive(same), 5, 0.1, f"sleep {same} (its process group) to die")
            wait_for(lambda: not alive(away), 5, 0.1, f"sleep {away} (own session) to die")
        finally:
            for pid in (same, away):
                if alive(pid):
                    os.kill(pid, 9)  # ours to clean up: the test started them

    def test_user_code_does_not_inherit_the_slot_the_master_reads(self):
        # the child has its own slot (and no other child's); a fork or an
        # exec by its user code has none, so it cannot speak for the child
        status, r = self.call("inherit", {"path": os.path.join(self.st.dir, "maps")})
        self.assertEqual(status, 200, r)
        res = r["data"]["result"] if "data" in r else r["result"]
        self.assertEqual(res["own"], 1, res)
        self.assertIs(res["shelled"], False, res)
        self.assertEqual(res["forked"], "absent", res)

    def test_a_thread_of_an_earlier_task_does_not_print_into_the_next(self):
        status, r = self.call("chatty")
        self.assertEqual(status, 200, r)
        status, r = self.call("quiet")
        self.assertEqual(status, 200, r)
        tid = (r.get("data") or r)["id"]
        task = self.st.wait_task(tid)
        self.assertIn("mine", task.get("output", ""))
        self.assertNotIn("STRAY", task.get("output", ""), task)
        time.sleep(3)  # let the chatty thread end before other tests

    def test_publishing_runs_top_level_code_outside_the_serving_interpreter(self):
        self.st.push_script("demo__poison", POISON)
        status, r = self.call("poisoned")
        self.assertEqual(status, 200, r)
        self.assertIs((r.get("data") or r)["result"], False,
                      "top-level code run by publishing changed the interpreter serving calls")


if __name__ == "__main__":
    unittest.main()
