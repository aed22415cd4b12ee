"""The gate's command line against a running pullgate and a real upstream (CNCF
Distribution 2.8): `exception add|ls|rm` changing what `explain` says, `explain` of
images pulled through the mirror (by skopeo and raw HTTP), and `audit` filtering the
log those pulls wrote."""
import datetime
import json
import os
import shutil
import time
import unittest

import harness as h

BAD_REASON = "CVE-2099-0002 in the base layer"


def cli(*args):
    return h.pullgate_cli(*args)


def one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1


class CliGate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="cli-gate-app")
        cls.bad = h.seed_oci(cls.registry, repo="it/bad", seed="cli-gate-bad")
        policy = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow",
                              "rules": [{"action": "deny", "repository": "it/bad", "reason": BAD_REASON}]}}
        # No admin listener: these tests use only the CLI, and its default port is fixed.
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], policy,
                                 args=["--admin-listen", ""]).start()
        cls.addClassCleanup(cls.pg.close)
        cls.up = cls.registry.address  # the upstream's configured name

        # A real client pulls the allowed image by tag through the mirror.
        r, _ = h.skopeo_via_mirror(cls.pg.dir, cls.registry, cls.pg, "it/app:v1")
        if r.returncode != 0:
            raise RuntimeError("skopeo pull of it/app:v1 failed: " + r.stderr)
        # The denied image: its manifest by tag is refused, and so is a layer.
        status, _, body = cls.pg.request("GET", "/v2/it/bad/manifests/v1",
                                         headers=[("Accept", h.ALL_MANIFEST_ACCEPT)])
        if status != 403:
            raise RuntimeError("it/bad:v1 was not denied: %d %r" % (status, body[:300]))
        status, _, _ = cls.pg.request("GET", "/v2/it/bad/blobs/" + cls.bad.layers[0].digest)
        if status != 403:
            raise RuntimeError("a layer of it/bad was not denied: %d" % status)

    def setUp(self):
        self.assertTrue(self.pg.alive(), "pullgate died before this test: " + self.pg.stderr())

    def explain(self, target, *extra):
        return cli("explain", target, "--data", self.pg.data_dir, "--policy", self.pg.policy_path, *extra)

    def explain_json(self, target, *extra):
        r = self.explain(target, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    # ---------------------------------------------------------------- explain

    def test_explain_allowed_image_pulled_by_tag(self):
        answer = self.explain_json("%s/it/app:v1" % self.up)
        self.assertEqual(answer["digest"], self.app.digest)
        self.assertEqual(answer["resolved"]["digest"], self.app.digest)
        self.assertEqual(answer["resolved"]["tag"], "v1")
        self.assertEqual(answer["decision"], "allow")
        self.assertTrue(answer["served"])
        self.assertEqual(answer["scope"], "default")
        self.assertEqual(answer["source"], "default")
        self.assertIsNone(answer["exception"])
        # The gate stored its decision under this policy; it still counts.
        self.assertEqual(answer["stored_verdict"]["decision"], "allow")
        self.assertTrue(answer["stored_verdict"]["counts"])
        self.assertEqual(answer["policy_version"], answer["stored_verdict"]["policy_version"])

        # A layer of it: referenced by the manifest, served through it.
        layer = self.explain_json("%s/it/app@%s" % (self.up, self.app.layers[0].digest))
        self.assertEqual(layer["kind"], "blob")
        self.assertEqual(layer["referenced_by"], [self.app.digest])
        self.assertTrue(layer["served"])

    def test_explain_denied_image_and_bare_digest(self):
        answer = self.explain_json("%s/it/bad:v1" % self.up)
        self.assertEqual(answer["digest"], self.bad.digest)
        self.assertEqual(answer["decision"], "deny")
        self.assertFalse(answer["served"])
        self.assertEqual(answer["source"], "rule")
        self.assertIn(BAD_REASON, answer["reasons"][0])
        by_digest = self.explain_json(self.bad.digest, "--upstream", self.up, "--repository", "it/bad")
        self.assertEqual(by_digest["decision"], "deny")
        self.assertIsNone(by_digest["resolved"])

    def test_explain_unknown_and_bad_input(self):
        r = self.explain("%s/it/app:never-pulled" % self.up)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(one_line(r.stderr), r.stderr)
        self.assertIn("tag not cached", r.stderr)
        self.assertEqual(r.stdout, "")

        r = self.explain("sha256:" + "0" * 64)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown to this mirror", r.stderr)

        r = self.explain("%s/it/app" % self.up)  # no tag or digest
        self.assertEqual(r.returncode, 1)
        self.assertTrue(one_line(r.stderr), r.stderr)

        r = cli("explain")
        self.assertEqual(r.returncode, 2)
        r = cli("explain", "a", "b", "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(one_line(r.stderr), r.stderr)
        r = self.explain("%s/it/app:v1" % self.up, "--bogus", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option --bogus", r.stderr)

    def test_explain_with_the_servers_config(self):
        answer = json.loads(cli("explain", "%s/it/bad:v1" % self.up, "--config", self.pg.config_path).stdout)
        self.assertEqual(answer["decision"], "deny")
        r = cli("explain", "quay.io/it/bad:v1", "--config", self.pg.config_path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("configured: %s" % self.up, r.stderr)

    def test_explain_with_only_the_data_directory_decides_under_the_servers_policy(self):
        # As a new user tries it: the data directory only. The server enforces a policy
        # that denies it/bad; the CLI must not answer from the built-in allow-all one.
        r = cli("explain", "%s/it/bad:v1" % self.up, "--data", self.pg.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        answer = json.loads(r.stdout)
        self.assertEqual(answer["decision"], "deny")
        self.assertIn(BAD_REASON, json.dumps(answer["reasons"]))
        self.assertEqual(answer["policy"]["decided_under"], "server")
        self.assertEqual(answer["policy"]["file"], os.path.abspath(self.pg.policy_path))
        self.assertEqual(answer["policy"]["version"], answer["policy"]["server"]["version"])
        self.assertTrue(answer["policy"]["server"]["running"])
        self.assertEqual(r.stderr, "")

        # Another policy named on the command line is used, and the note says it is
        # not the server's.
        other = os.path.join(self.work.path, "allow-all-policy.json")
        with open(other, "w") as f:
            json.dump({"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}}, f)
        r = cli("explain", "%s/it/bad:v1" % self.up, "--data", self.pg.data_dir, "--policy", other)
        self.assertEqual(r.returncode, 0, r.stderr)
        answer = json.loads(r.stdout)
        self.assertEqual(answer["decision"], "allow")
        self.assertEqual(answer["policy"]["decided_under"], "--policy")
        self.assertIn("deciding under " + other, r.stderr)
        self.assertIn("the server on %s decides under %s" % (self.pg.data_dir, os.path.abspath(self.pg.policy_path)),
                      r.stderr)

        # The server's file edited but not reloaded: decided under the file as it is
        # now, and the note says the server has not loaded it.
        with open(self.pg.policy_path, "rb") as f:
            original = f.read()
        try:
            self.pg.write_policy({"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"}})
            r = cli("explain", "%s/it/bad:v1" % self.up, "--data", self.pg.data_dir)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["decision"], "allow")
            self.assertIn("is not what the server on %s loaded" % self.pg.data_dir, r.stderr)
            self.assertIn("SIGHUP", r.stderr)
        finally:
            self.pg.write_policy(original.decode())

    def test_explain_on_a_data_directory_no_server_ran_on_says_which_policy(self):
        empty = os.path.join(self.work.path, "copied-data")
        os.makedirs(empty, exist_ok=True)
        # A copy of the cache without the server's record (as after a restore of lmdb/ only).
        shutil.copytree(os.path.join(self.pg.data_dir, "lmdb"), os.path.join(empty, "lmdb"), dirs_exist_ok=True)
        r = cli("explain", "%s/it/bad:v1" % self.up, "--data", empty)
        self.assertEqual(r.returncode, 0, r.stderr)
        answer = json.loads(r.stdout)
        self.assertEqual(answer["decision"], "allow")
        self.assertEqual(answer["policy"]["decided_under"], "built-in")
        self.assertIsNone(answer["policy"]["server"])
        self.assertIn("no server has recorded its policy in %s; deciding under the built-in allow-all policy" % empty,
                      r.stderr)

    # ---------------------------------------------------------------- exceptions

    def test_exception_add_ls_rm_changes_explain(self):
        image = "%s/it/bad:v1" % self.up
        self.assertEqual(self.explain_json(image)["decision"], "deny")

        r = self.pg.cli("exception", "add", "--id", "INC-77", "--digest", self.bad.digest,
                        "--upstream", self.up, "--reason", "rollback", "--by", "alice", "--expires-in", "2h")
        self.assertEqual(r.returncode, 0, r.stderr)
        added = json.loads(r.stdout)
        self.assertEqual(added["id"], "INC-77")
        self.assertFalse(added["expired"])

        answer = self.explain_json(image)
        self.assertEqual(answer["decision"], "allow")
        self.assertTrue(answer["served"])
        self.assertEqual(answer["source"], "exception")
        self.assertEqual(answer["exception"]["id"], "INC-77")
        self.assertEqual(answer["exception"]["origin"], "runtime")
        self.assertEqual(answer["exception"]["who"], "alice")
        self.assertTrue(any(BAD_REASON in reason for reason in answer["reasons"]), answer["reasons"])

        r = self.pg.cli("exception", "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertIn("INC-77", [e["id"] for e in listed])

        # The same id twice is refused.
        r = self.pg.cli("exception", "add", "--id", "INC-77", "--repository", "it/*", "--reason", "x",
                        "--by", "bob", "--expires-in", "1h")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)

        r = self.pg.cli("exception", "rm", "INC-77")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.explain_json(image)["decision"], "deny")
        r = self.pg.cli("exception", "rm", "INC-77")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(one_line(r.stderr), r.stderr)

    def test_exception_by_repository_with_fixed_expiry(self):
        future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        r = self.pg.cli("exception", "add", "--id", "REPO-1", "--repository", "it/b*", "--reason", "review",
                        "--by", "carol", "--expires", future)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            answer = self.explain_json("%s/it/bad:v1" % self.up)
            self.assertEqual(answer["exception"]["id"], "REPO-1")
        finally:
            self.assertEqual(self.pg.cli("exception", "rm", "REPO-1").returncode, 0)

    def test_exception_add_errors(self):
        base = ["exception", "add", "--reason", "r", "--by", "w"]
        cases = [
            # (args, exit code, text in the error)
            (base + ["--id", "E1", "--digest", "sha256:123", "--expires-in", "1h"], 1, "--digest"),
            (base + ["--id", "E1", "--repository", "Bad/Repo", "--expires-in", "1h"], 1, "--repository"),
            (base + ["--id", "E1", "--repository", "x", "--expires", "2020-01-01T00:00:00Z"], 1, "in the past"),
            (base + ["--id", "E1", "--repository", "x", "--expires", "tomorrow"], 1, "--expires"),
            (base + ["--id", "E1", "--repository", "x", "--expires-in", "soon"], 2, "--expires-in"),
            (base + ["--id", "E1", "--repository", "x"], 2, "--expires"),
            (base + ["--id", "E1", "--expires-in", "1h"], 2, "--digest or --repository"),
            (["exception", "add", "--id", "E1", "--repository", "x", "--expires-in", "1h"], 2, "--reason"),
            (base + ["--id", "E1", "--id", "E2", "--repository", "x", "--expires-in", "1h"], 2, "twice"),
            (["exception", "frob"], 2, "unknown exception command"),
            (["exception", "rm"], 2, "ID"),
        ]
        for args, code, text in cases:
            r = self.pg.cli(*args)
            self.assertEqual(r.returncode, code, "%r: %s" % (args, r.stderr))
            self.assertTrue(one_line(r.stderr), "%r: %r" % (args, r.stderr))
            self.assertIn(text, r.stderr, args)
        ids = [json.loads(line)["id"] for line in self.pg.cli("exception", "ls").stdout.splitlines()]
        self.assertNotIn("E1", ids)
        r = cli("exception", "ls", "--data", os.path.join(self.work.path, "no-such-dir"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no cache", r.stderr)

    # ---------------------------------------------------------------- audit

    def audit(self, *args):
        return cli("audit", "--file", self.pg.audit_path, *args)

    def records(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines()]

    def test_audit_filters_on_real_pulls(self):
        # The writer thread appends lines up to 16 ms after each decision: wait until the
        # log holds still for longer than that and the CLI agrees with a direct read.
        def settled():
            before = len(self.pg.audit_records())
            time.sleep(0.1)
            everything = self.records(self.audit())
            return everything if len(everything) == before == len(self.pg.audit_records()) else None
        everything = h.wait_until(settled, 10, "the audit log to settle")
        self.assertGreaterEqual(len(everything), 4)  # manifest + blobs of it/app, it/bad twice

        denied = self.records(self.audit("--decision", "deny"))
        self.assertTrue(denied)
        self.assertTrue(all(rec["repository"] == "it/bad" and rec["decision"] == "deny" for rec in denied))
        self.assertEqual(denied, self.records(self.audit("--served", "false")))

        by_digest = self.records(self.audit("--digest", self.app.digest))
        self.assertTrue(by_digest)
        self.assertTrue(all(rec["digest"] == self.app.digest for rec in by_digest))

        app = self.records(self.audit("--repository", "it/a*"))
        self.assertTrue(app and all(rec["repository"] == "it/app" for rec in app))
        self.assertEqual(len(self.records(self.audit("--repository", "it/*"))), len(everything))

        self.assertEqual(len(self.records(self.audit("--client", "127.0.0.1"))), len(everything))
        self.assertEqual(self.records(self.audit("--client", "10.9.9.9")), [])

        last = self.records(self.audit("--limit", "1"))
        self.assertEqual(last, everything[-1:])

        future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(self.records(self.audit("--since", future)), [])
        self.assertEqual(len(self.records(self.audit("--since", "2000-01-01T00:00:00+02:00"))), len(everything))

        # --config finds the same log.
        self.assertEqual(self.records(cli("audit", "--config", self.pg.config_path)), everything)

    def test_audit_reads_rotated_files_oldest_first_and_counts_malformed_lines(self):
        with open(self.pg.audit_path) as f:
            live = [line for line in f.read().splitlines() if line.strip()]
        path = os.path.join(self.work.path, "copy-audit.log")
        older = json.loads(live[0])
        older["time"] = "2001-01-01T00:00:00.000Z"
        with open(path + ".2", "w") as f:
            f.write(json.dumps(older) + "\n")
        with open(path + ".1", "w") as f:
            f.write("not json\n" + live[0] + "\n" + '{"time": "yesterday"}\n')
        with open(path, "w") as f:
            f.write("\n".join(live[1:]) + "\n" + '{"half a li')
        r = cli("audit", "--file", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(got[0]["time"], "2001-01-01T00:00:00.000Z")
        self.assertEqual([json.dumps(g, sort_keys=True) for g in got[1:]],
                         [json.dumps(json.loads(line), sort_keys=True) for line in live])
        self.assertIn("skipped 3 malformed lines", r.stderr)
        self.assertTrue(one_line(r.stderr), r.stderr)

    def test_audit_usage_errors(self):
        for args, code in [(["--decision", "maybe"], 2), (["--served", "yes"], 2), (["--limit", "0"], 2),
                           (["--limit", "-3"], 2), (["--since", "yesterday"], 2), (["--digest", "sha256:1"], 2),
                           (["extra"], 2), (["--data", "/tmp"], 2)]:
            r = self.audit(*args)
            self.assertEqual(r.returncode, code, "%r: %s" % (args, r.stderr))
            self.assertTrue(one_line(r.stderr), "%r: %r" % (args, r.stderr))
        r = cli("audit", "--file", os.path.join(self.work.path, "missing.log"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no audit log", r.stderr)


if __name__ == "__main__":
    unittest.main()
