"""pullgate doctor against each client configuration shape test_deploy_configs.py
proves with real clients (the shipped files from deploy/ and the usual fallback
ones), written into a temp node tree, with real probes: a running pullgate as the
mirror, a real upstream registry (CNCF Distribution) on loopback, and closed ports
for a mirror that is down and an upstream the node cannot reach."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness as h


def closed_port_address():
    # A port nothing listens on: bound once by free_port() and released.
    return "127.0.0.1:%d" % h.free_port()


class Doctor(h.PullgateAlive, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        policy = {"default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow", "rules": []}}
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], policy).start()
        cls.addClassCleanup(cls.pg.close)
        cls.bin = cls.pg.bin

    # ---------------------------------------------------------------- helpers

    def node(self):
        """An empty node tree: paths for each client's configuration, none written."""
        root = tempfile.mkdtemp(prefix="node-", dir=self.work.path)
        self.addCleanup(shutil.rmtree, root, True)
        n = {
            "certs": os.path.join(root, "certs.d"),
            "containerd_config": os.path.join(root, "containerd-config.toml"),
            "conf": os.path.join(root, "registries.conf"),
            "conf_dir": os.path.join(root, "registries.conf.d"),
            "daemon": os.path.join(root, "daemon.json"),
        }
        return n

    def write(self, path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def hosts_toml(self, n, upstream, text):
        self.write(os.path.join(n["certs"], upstream, "hosts.toml"), text)

    def doctor(self, n, *extra, timeout=60):
        cmd = [self.bin, "doctor", "--containerd-certs-dir", n["certs"],
               "--containerd-config", n["containerd_config"], "--registries-conf", n["conf"],
               "--registries-conf-dir", n["conf_dir"], "--docker-daemon-json", n["daemon"],
               "--timeout", "3"] + list(extra)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def doctor_json(self, n, *extra):
        r = self.doctor(n, "--json", *extra)
        self.assertEqual(r.stderr, "")
        return r.returncode, json.loads(r.stdout)

    def usual_hosts_toml(self, upstream, mirror):
        # As harness.Containerd.write_hosts: server = the upstream, the mirror as [host].
        return ('server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                % (upstream, mirror))

    def usual_registries_conf(self, n, blocked):
        h.write_registries_conf(n["conf"], self.registry.address, self.pg.address, blocked=blocked)

    def one_finding(self, doc, client):
        found = [f for f in doc["findings"] if f["client"] == client]
        self.assertEqual(len(found), 1, doc)
        return found[0]

    # ---------------------------------------------------------------- containerd

    def test_containerd_shipped_hosts_toml_is_gated_and_the_mirror_answers(self):
        n = self.node()
        self.hosts_toml(n, self.registry.address, h.render_shipped_hosts_toml(self.pg.address))
        r = self.doctor(n)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok  containerd  %s" % self.registry.address, r.stdout)
        self.assertIn("pulls go only through the mirror http://%s" % self.pg.address, r.stdout)
        self.assertIn("the mirror answers (HTTP 200 from http://%s/v2/)" % self.pg.address, r.stdout)
        self.assertNotIn("fix:", r.stdout)

        status, doc = self.doctor_json(n)
        self.assertEqual(status, 0)
        f = self.one_finding(doc, "containerd")
        self.assertEqual(f["verdict"], "gated")
        self.assertTrue(f["through_mirror"])
        self.assertFalse(f["falls_back"])
        self.assertIs(f["mirror_answers"], True)
        self.assertIsNone(f["upstream_reachable"])
        self.assertIsNone(f["fix"])
        self.assertFalse(doc["bypass"])

    def test_containerd_usual_hosts_toml_is_a_bypass_the_node_can_use(self):
        n = self.node()
        self.hosts_toml(n, self.registry.address, self.usual_hosts_toml(self.registry.address, self.pg.address))
        r = self.doctor(n)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("BYPASS  containerd  %s" % self.registry.address, r.stdout)
        self.assertIn("a refusal or an outage falls back to http://%s, which this node reaches (HTTP 200 from http://%s/v2/)"
                      % (self.registry.address, self.registry.address), r.stdout)
        self.assertIn('fix: make %s the shipped deploy/containerd/hosts.toml: server = "http://%s"'
                      % (os.path.join(n["certs"], self.registry.address, "hosts.toml"), self.pg.address), r.stdout)

        status, doc = self.doctor_json(n)
        self.assertEqual(status, 1)
        self.assertTrue(doc["bypass"])
        f = self.one_finding(doc, "containerd")
        self.assertEqual(f["verdict"], "bypass")
        self.assertIs(f["upstream_reachable"], True)
        self.assertIs(f["mirror_answers"], True)
        self.assertEqual([e["url"] for e in f["endpoints"]],
                         ["http://" + self.pg.address, "http://" + self.registry.address])
        self.assertEqual([e["mirror"] for e in f["endpoints"]], [True, False])
        self.assertEqual(f["endpoints"][1]["probe"]["status"], 200)
        self.assertIn("deploy/containerd/hosts.toml", f["fix"])

    def test_containerd_fallback_to_an_upstream_the_node_cannot_reach(self):
        n = self.node()
        unreachable = closed_port_address()
        self.hosts_toml(n, unreachable, self.usual_hosts_toml(unreachable, self.pg.address))
        r = self.doctor(n)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("closed  containerd  %s" % unreachable, r.stdout)
        self.assertIn("which this node cannot reach now", r.stdout)
        self.assertIn("the gate holds only while that route stays closed", r.stdout)
        self.assertIn("fix: make", r.stdout)
        # Without probes nothing shows the route closed: it counts as open.
        r = self.doctor(n, "--no-network")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("BYPASS  containerd  %s" % unreachable, r.stdout)
        self.assertIn("(reachability not probed)", r.stdout)

    def test_containerd_only_server_and_broken_files_pull_from_the_upstream(self):
        n = self.node()
        self.hosts_toml(n, self.registry.address, 'server = "http://%s"\n' % self.pg.address)
        self.hosts_toml(n, "ghcr.io", 'server = "http://%s"\n[host."http://%s"\ncapabilities = []\n'
                        % (self.pg.address, self.pg.address))
        status, doc = self.doctor_json(n, "--no-network")
        self.assertEqual(status, 1)
        by_upstream = {f["upstream"]: f for f in doc["findings"]}
        only_server = by_upstream[self.registry.address]
        self.assertEqual(only_server["verdict"], "bypass")
        self.assertFalse(only_server["through_mirror"])
        self.assertIn("invalid host tree", " ".join(only_server["notes"]))
        self.assertIn('add [host."http://%s"]' % self.pg.address, only_server["fix"])
        broken = by_upstream["ghcr.io"]
        self.assertEqual(broken["verdict"], "bypass")
        self.assertIn("line 2", " ".join(broken["notes"]))

    def test_the_mirror_down_is_said(self):
        n = self.node()
        down = closed_port_address()
        self.hosts_toml(n, self.registry.address, h.render_shipped_hosts_toml(down))
        r = self.doctor(n, "--mirror", "http://" + down)
        # No way around the mirror: pulls fail while it is down, the gate is not bypassed.
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("mirror http://%s: does not answer" % down, r.stdout)
        self.assertIn("the mirror does not answer (http://%s:" % down, r.stdout)
        self.assertIn("pulls fail until it does", r.stdout)
        status, doc = self.doctor_json(n, "--mirror", "http://" + down)
        self.assertEqual(status, 0)
        self.assertFalse(doc["mirror"]["probe"]["answered"])
        self.assertIs(self.one_finding(doc, "containerd")["mirror_answers"], False)

    def test_config_names_the_upstreams_a_client_leaves_out(self):
        n = self.node()
        os.makedirs(n["certs"])
        self.write(n["containerd_config"], 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                   '  config_path = "%s"\n' % n["certs"])
        r = self.doctor(n, "--config", self.pg.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("mirror http://%s: answers" % self.pg.address, r.stdout)
        self.assertIn("BYPASS  containerd  %s" % self.registry.address, r.stdout)
        self.assertIn("no hosts.toml for it", r.stdout)
        self.assertIn("fix: create %s from deploy/containerd/hosts.toml"
                      % os.path.join(n["certs"], self.registry.address, "hosts.toml"), r.stdout)
        self.assertNotIn("config_path", r.stdout)
        # The CRI plugin reading another tree is said.
        self.write(n["containerd_config"], 'version = 2\n')
        r = self.doctor(n, "--config", self.pg.config_path, "--no-network")
        self.assertIn("registry.config_path is not set", r.stdout)

    # ---------------------------------------------------------------- registries.conf

    def test_registries_conf_shipped_is_gated(self):
        n = self.node()
        self.write(n["conf"], h.render_shipped_registries_conf(self.registry.address, self.pg.address))
        status, doc = self.doctor_json(n)
        self.assertEqual(status, 0, doc)
        f = self.one_finding(doc, "registries.conf")
        self.assertEqual(f["verdict"], "gated")
        self.assertEqual(f["upstream"], self.registry.address)
        self.assertIs(f["mirror_answers"], True)
        # An insecure mirror without a scheme: https refused by a plain-HTTP pullgate, then http.
        self.assertEqual(f["endpoints"][0]["probe"]["detail"], "HTTP 200 from http://%s/v2/" % self.pg.address)

    def test_registries_conf_without_blocked_falls_back(self):
        n = self.node()
        self.usual_registries_conf(n, blocked=False)
        r = self.doctor(n)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("BYPASS  registries.conf  %s" % self.registry.address, r.stdout)
        self.assertIn("falls back to %s, which this node reaches" % self.registry.address, r.stdout)
        self.assertIn('fix: in %s, add blocked = true to the [[registry]] with prefix "%s" (the mirror stays in use)'
                      % (n["conf"], self.registry.address), r.stdout)
        self.assertIn("deploy/crio-podman/registries.conf", r.stdout)
        # The same entry blocked in a drop-in replaces it.
        self.write(os.path.join(n["conf_dir"], "50-block.conf"),
                   '[[registry]]\nlocation = "%s"\ninsecure = true\nblocked = true\n\n'
                   '[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n' % (self.registry.address, self.pg.address))
        status, doc = self.doctor_json(n)
        self.assertEqual(status, 0, doc)
        f = self.one_finding(doc, "registries.conf")
        self.assertEqual(f["file"], os.path.join(n["conf_dir"], "50-block.conf"))
        self.assertEqual(f["verdict"], "gated")

    def test_registries_conf_that_does_not_parse_is_said_with_its_line(self):
        n = self.node()
        self.write(n["conf"], '[[registry]]\nlocation = "x"\nblocked = maybe\n')
        r = self.doctor(n, "--no-network")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("fails  registries.conf", r.stdout)
        self.assertIn("line 3", r.stdout)

    # ---------------------------------------------------------------- docker

    def test_docker_daemon_json_always_falls_back(self):
        n = self.node()
        self.write(n["daemon"], h.read_deploy_file("docker/daemon.json").replace(h.DEPLOY_EXAMPLE_MIRROR,
                                                                                  self.pg.address))
        r = self.doctor(n, "--no-network")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("BYPASS  docker  docker.io", r.stdout)
        self.assertIn("falls back to https://registry-1.docker.io", r.stdout)
        self.assertIn("fix: registry-mirrors cannot close the fallback (deploy/docker/README.md)", r.stdout)
        # With probes: the mirror answers; whether Docker Hub is reachable depends on
        # this machine's network, and the verdict follows what the probe saw.
        status, doc = self.doctor_json(n)
        f = self.one_finding(doc, "docker")
        self.assertIs(f["mirror_answers"], True)
        self.assertIsInstance(f["upstream_reachable"], bool)
        self.assertEqual(f["verdict"], "bypass" if f["upstream_reachable"] else "closed-route")
        self.assertEqual(status, 1 if f["upstream_reachable"] else 0)

    # ---------------------------------------------------------------- the command

    def test_nothing_found_and_usage_errors(self):
        n = self.node()
        # Nothing routes a pull through a mirror: every pull goes around the gate.
        r = self.doctor(n, "--no-network")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("BYPASS  no client configuration found", r.stdout)
        self.assertIn("fix: containerd: deploy/containerd/hosts.toml", r.stdout)
        status, doc = self.doctor_json(n, "--no-network")
        self.assertEqual((status, doc["bypass"], doc["findings"]), (1, True, []))
        self.assertIn(n["daemon"] + " (not found)", r.stdout)
        for args in (["--mirror", "http://x:5000/path"], ["--bogus", "1"], ["--timeout", "0"], ["extra"]):
            r = self.doctor(n, *args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn("pullgate doctor --help", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
