"""The command line: help and version, usage errors, check-config, and serve refusing
to start on a bad config, a busy port or an unusable data dir."""
import json
import os
import socket
import subprocess
import unittest

import harness as h


def run(*args, timeout=20):
    return subprocess.run([h.pullgate_bin()] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(h.pullgate_bin(), os.X_OK):
            raise RuntimeError("PULLGATE_BIN %r is not an executable" % h.pullgate_bin())
        cls.work = h.Workdir()
        cls.addClassCleanup(cls.work.close)

    def write(self, name, text):
        path = os.path.join(self.work.path, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def valid_config(self, port=None, **extra):
        config = {
            "listen": "127.0.0.1:%d" % (port or h.free_port()),
            "data_dir": os.path.join(self.work.path, "data-%d" % h.free_port()),
            "upstreams": [{"name": "up.test", "url": "http://127.0.0.1:%d" % h.free_port(), "default": True}],
        }
        config.update(extra)
        return config

    def assert_usage_error(self, r, offending):
        self.assertEqual(r.returncode, 2, "stdout %r stderr %r" % (r.stdout, r.stderr))
        err = lines(r.stderr)
        self.assertTrue(err, "nothing on stderr")
        # The message is one line; usage text may follow it.
        self.assertTrue(err[0].startswith("pullgate: "), err[0])
        self.assertIn(offending, err[0])
        self.assertEqual(len([l for l in err if l.startswith("pullgate: ")]), 1, r.stderr)

    # ---------------------------------------------------------------- help, version

    def test_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("serve", "check-config", "--version", "--help"):
            self.assertIn(word, r.stdout)

    def test_every_listed_command_has_help(self):
        # `pullgate help` and dispatch read one table: each command listed answers
        # `--help` with its own usage text, and those that need arguments print it,
        # as a usage error, when given none.
        r = run("help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, run("--help").stdout)
        listed = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("  pullgate ")]
        commands = [c for c in listed if not c.startswith("-")]
        for command in ("serve", "check-config", "policy", "verdict", "report", "pending", "exception", "explain",
                        "audit", "bundle", "cache", "verify-bundle"):
            self.assertIn(command, commands)
        for command in commands:
            r = run(command, "--help")
            self.assertEqual(r.returncode, 0, (command, r.stderr))
            self.assertTrue(r.stdout.startswith("Usage:"), (command, r.stdout))
            self.assertIn("pullgate " + command, r.stdout)
            if command in ("policy", "verdict", "report", "pending", "exception", "explain", "bundle", "cache",
                           "verify-bundle"):
                bare = run(command)
                self.assertEqual(bare.returncode, 2, (command, bare.stderr))
                self.assertEqual(bare.stdout, r.stdout)

    def test_serve_help(self):
        r = run("serve", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--config", "--listen", "--data", "--upstream", "--offline", "--threads"):
            self.assertIn(flag, r.stdout + r.stderr)

    def test_check_config_help(self):
        r = run("check-config", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("check-config", r.stdout + r.stderr)
        self.assertIn("FILE", r.stdout + r.stderr)

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r"^pullgate \d+\.\d+\.\d+")
        self.assertEqual(len(lines(r.stdout)), 1, r.stdout)

    # ---------------------------------------------------------------- usage errors

    def test_unknown_command(self):
        self.assert_usage_error(run("frobnicate"), "frobnicate")

    def test_unknown_flag(self):
        self.assert_usage_error(run("--no-such-flag"), "--no-such-flag")
        self.assert_usage_error(run("serve", "--no-such-flag"), "--no-such-flag")
        self.assert_usage_error(run("serve", "--listen"), "--listen")  # a flag missing its value

    def test_unknown_flag_check_config(self):
        # An option-looking argument is a usage error (2), not a config file to read (1).
        self.assert_usage_error(run("check-config", "--no-such-flag"), "--no-such-flag")

    # ---------------------------------------------------------------- check-config

    def test_check_config_valid(self):
        path = self.write("valid.json", json.dumps(self.valid_config(), indent=2))
        r = run("check-config", path)
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))

    def test_check_config_comments_accepted(self):
        config = self.valid_config()
        text = ("// a line comment before the document\n"
                "{\n"
                "  /* a block comment\n     over two lines */\n"
                '  "listen": "%s", // trailing comment\n'
                '  "data_dir": "%s",\n'
                '  "upstreams": [ /* inline */ {"url": "%s"} ]\n'
                "}\n// the end\n") % (config["listen"], config["data_dir"], config["upstreams"][0]["url"])
        r = run("check-config", self.write("comments.json", text))
        self.assertEqual(r.returncode, 0, "stdout %r stderr %r" % (r.stdout, r.stderr))

    def test_check_config_three_mistakes(self):
        config = self.valid_config()
        config["listen"] = "not-an-address"
        config["no_such_field"] = 1
        config["upstreams"] = [{"name": "nourl.test"}]
        r = run("check-config", self.write("three.json", json.dumps(config)))
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        out = lines(r.stdout + "\n" + r.stderr)
        self.assertEqual(len(out), 3, "expected one line per mistake, got %r" % out)
        for field in ("listen", "no_such_field", "url"):
            self.assertEqual(len([l for l in out if field in l]), 1, "%r not named on exactly one line: %r"
                             % (field, out))
        self.assertTrue(any("upstreams[0]" in l and "url" in l for l in out), out)

    def test_check_config_broken_json(self):
        r = run("check-config", self.write("broken.json", '{"listen": "127.0.0.1:5000",\n  "upstreams": [\n'))
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        self.assertEqual(len(lines(r.stdout + "\n" + r.stderr)), 1, r.stdout + r.stderr)

    def test_check_config_missing_file(self):
        missing = os.path.join(self.work.path, "does-not-exist.json")
        r = run("check-config", missing)
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        out = lines(r.stdout + "\n" + r.stderr)
        self.assertEqual(len(out), 1, out)
        self.assertIn("does-not-exist.json", out[0])

    # ---------------------------------------------------------------- serve refusing to start

    def assert_port_free(self, port):
        # Nothing listens there: a connect is refused.
        with socket.socket() as s:
            s.settimeout(5)
            with self.assertRaises(ConnectionRefusedError):
                s.connect(("127.0.0.1", port))

    def test_serve_invalid_config(self):
        port = h.free_port()
        config = self.valid_config(port=port)
        config["no_such_field"] = True
        r = run("serve", "--config", self.write("serve-bad.json", json.dumps(config)))
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        self.assertIn("no_such_field", r.stderr)
        self.assertNotIn('"listening"', r.stderr)
        self.assertFalse(os.path.exists(config["data_dir"]), "data dir created for a config that is refused")
        self.assert_port_free(port)

    def test_serve_busy_port(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            r = run("serve", "--listen", "127.0.0.1:%d" % port,
                    "--data", os.path.join(self.work.path, "data-busy"),
                    "--upstream", "http://127.0.0.1:%d" % h.free_port())
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        err = lines(r.stderr)
        self.assertEqual(len(err), 1, err)
        self.assertTrue(err[0].startswith("pullgate: "), err[0])
        self.assertIn(str(port), err[0])

    def test_serve_data_dir_not_writable(self):
        regular = self.write("a-regular-file", "not a directory\n")
        port = h.free_port()
        r = run("serve", "--listen", "127.0.0.1:%d" % port, "--data", os.path.join(regular, "data"),
                "--upstream", "http://127.0.0.1:%d" % h.free_port())
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        err = lines(r.stderr)
        self.assertEqual(len(err), 1, err)
        self.assertTrue(err[0].startswith("pullgate: "), err[0])
        self.assertIn("a-regular-file", err[0])
        self.assert_port_free(port)


if __name__ == "__main__":
    unittest.main(verbosity=2)
