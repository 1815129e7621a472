#!/usr/bin/python3
"""docs/two-servers.md and docs/two-servers/*.sh agree.

The doc shows each script in full, in a ```sh block right after a
`<!-- docs/two-servers/NAME.sh -->` line; appliance/machines runs those
scripts inside booted machines. This test fails when a block and its script
differ, when a script is not shown, or when appliance/machines stops running
one of them (then the doc would be untested)."""
import glob
import os
import re
import subprocess
import sys
import unittest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(TOP, "docs", "two-servers.md")
# scripts the lab runs a step at a time: the file that does and its
# function for one step
LAB_RUN = {"docs/two-servers/backend-ha.sh": ("appliance/lab-ha.sh", "ha_doc_step"),
           "docs/two-servers/backend-add-replica.sh": ("appliance/lab-ha.sh", "ha_add_step")}
# scripts of steps that appliance/machines up --ha runs too, each step by name
MACHINES_STEPS = ("docs/two-servers/backend-ha.sh",)
BLOCK = re.compile(r"^<!-- (docs/two-servers/[\w.-]+\.sh) -->\n```sh\n(.*?)^```$", re.M | re.S)


class DocsAreTheScript(unittest.TestCase):
    def setUp(self):
        with open(DOC) as f:
            self.doc = f.read()
        self.blocks = {m.group(1): m.group(2) for m in BLOCK.finditer(self.doc)}
        self.scripts = sorted(os.path.relpath(p, TOP) for p in glob.glob(os.path.join(TOP, "docs/two-servers/*.sh")))

    def test_every_script_is_shown(self):
        self.assertTrue(self.scripts, "no docs/two-servers/*.sh")
        for s in self.scripts:
            self.assertIn(s, self.blocks, "%s is not shown in docs/two-servers.md (a <!-- %s --> block)" % (s, s))

    def test_blocks_equal_scripts(self):
        for name, text in self.blocks.items():
            path = os.path.join(TOP, name)
            self.assertTrue(os.path.exists(path), "docs/two-servers.md shows %s, which does not exist" % name)
            with open(path) as f:
                want = f.read()
            self.assertEqual(text, want, "docs/two-servers.md's block for %s differs from the script" % name)

    def test_scripts_parse(self):
        for s in self.scripts:
            r = subprocess.run(["sh", "-n", os.path.join(TOP, s)], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "%s: %s" % (s, r.stderr))

    def test_machines_run_every_script(self):
        with open(os.path.join(TOP, "appliance", "machines")) as f:
            m = f.read()
        for s in self.scripts:
            if s in LAB_RUN and s not in MACHINES_STEPS:
                continue  # test_lab_runs_every_step
            self.assertRegex(m, r"/root/two-servers/%s\b" % re.escape(os.path.basename(s)),
                             "appliance/machines does not run %s" % s)

    @staticmethod
    def steps_of(script):
        with open(os.path.join(TOP, script)) as f:
            return re.findall(r"^([a-z][a-z-]*)\)$", f.read(), re.M)

    def test_lab_runs_every_step(self):
        # The HA backend's scripts are run by the lab (appliance/lab-ha.sh),
        # a step at a time (`ha_doc_step STEP ...`, `ha_add_step STEP`): each
        # step a script knows (its case labels) must be one the lab runs, or
        # that part of the doc would be untested.
        for script, (runner, fn) in LAB_RUN.items():
            steps = self.steps_of(script)
            with open(os.path.join(TOP, runner)) as f:
                lab = f.read()
            self.assertIn(script, lab, "%s does not run %s" % (runner, script))
            self.assertTrue(steps, "%s: no steps (case labels) found" % script)
            for step in steps:
                self.assertTrue(re.search(r"^[^#\n]*\b%s %s\b" % (fn, re.escape(step)), lab, re.M),
                                "%s does not run step '%s' of %s" % (runner, step, script))

    def test_machines_run_every_step(self):
        # appliance/machines up --ha runs the HA backend's script on the
        # machines, each step by name (`.../backend-ha.sh STEP`)
        with open(os.path.join(TOP, "appliance", "machines")) as f:
            m = f.read()
        for script in MACHINES_STEPS:
            for step in self.steps_of(script):
                self.assertRegex(m, r"/root/two-servers/%s %s\b" % (re.escape(os.path.basename(script)),
                                                                   re.escape(step)),
                                 "appliance/machines does not run step '%s' of %s" % (step, script))

    def test_redis_durability_stated_and_set(self):
        # the doc's promise (AOF, fsync every second) is what the script sets
        with open(os.path.join(TOP, "docs/two-servers/backend.sh")) as f:
            b = f.read()
        for line in ("appendonly yes", "appendfsync everysec"):
            self.assertIn(line, b)
            self.assertIn(line, self.doc.replace(b, ""), "the doc's text does not state " + line)


if __name__ == "__main__":
    unittest.main()
