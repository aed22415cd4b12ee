"""Real services for fleet tests: an etcd cluster on loopback (Debian's etcd-server,
/usr/bin/etcd) and nginx (Debian's nginx-light) balancing clients across replicas."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import harness as h

ETCD = "/usr/bin/etcd"
NGINX = "/usr/sbin/nginx"


def have_etcd():
    return os.access(ETCD, os.X_OK)


def have_nginx():
    return os.access(NGINX, os.X_OK)


def _post_json(url, doc, timeout=2):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class EtcdMember:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.name = "m%d" % index
        self.client_port = h.free_port()
        self.peer_port = h.free_port()
        self.client_url = "http://127.0.0.1:%d" % self.client_port
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port
        self.data_dir = os.path.join(cluster.dir, self.name)
        self.log_path = os.path.join(cluster.dir, self.name + ".log")
        self.proc = None

    def start(self, initial_cluster, state):
        log = open(self.log_path, "ab")
        # Short heartbeats and elections: a stopped leader is replaced within a second.
        self.proc = subprocess.Popen(
            [ETCD, "--name", self.name, "--data-dir", self.data_dir,
             "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
             "--initial-cluster-token", self.cluster.token,
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def stop(self):
        if self.proc is not None:
            h._stop_process(self.proc, timeout=10)
            self.proc = None

    def healthy(self):
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=1) as r:
                return json.loads(r.read().decode()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def status(self):
        """{"member_id", "leader"} from the member's maintenance status, or None."""
        try:
            doc = _post_json(self.client_url + "/v3/maintenance/status", {})
            return {"member_id": doc["header"]["member_id"], "leader": doc.get("leader")}
        except (OSError, ValueError, KeyError):
            return None


class EtcdCluster:
    """n members on loopback, data under a temp dir; stop/start members or all."""

    def __init__(self, workdir, n=3):
        self.dir = tempfile.mkdtemp(prefix="etcd-", dir=workdir)
        self.token = os.path.basename(self.dir)
        self.members = [EtcdMember(self, i) for i in range(n)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        self.started_once = False

    @property
    def endpoints(self):
        return [m.client_url for m in self.members]

    def start(self, timeout=30):
        state = "existing" if self.started_once else "new"
        for m in self.members:
            if m.proc is None:
                m.start(self.initial_cluster, state)
        self.started_once = True
        h.wait_until(lambda: all(m.healthy() for m in self.members), timeout, "etcd cluster healthy")
        return self

    def leader(self, timeout=10):
        def find():
            for m in self.members:
                if m.proc is None:
                    continue
                s = m.status()
                if s and s["leader"] and s["member_id"] == s["leader"]:
                    return m
            return None
        return h.wait_until(find, timeout, "an etcd leader")

    def stop_all(self):
        for m in self.members:
            m.stop()

    def close(self):
        self.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """nginx in front of `backends` ("host:port"), round robin per request, streaming
    (no buffering), as a Kubernetes Service or a load balancer would sit before
    replicas."""

    def __init__(self, workdir, backends):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        self.port = h.free_port()
        self.host = "127.0.0.1"
        self.address = "%s:%d" % (self.host, self.port)
        servers = "".join("    server %s max_fails=0;\n" % b for b in backends)
        conf = """
daemon off;
worker_processes 1;
user root root;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log %(dir)s/access.log;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  upstream replicas {
%(servers)s    keepalive 16;
  }
  server {
    listen %(address)s;
    client_max_body_size 0;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
""" % {"dir": self.dir, "servers": servers, "address": self.address}
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self, timeout=20):
        with open(os.path.join(self.dir, "stderr"), "ab") as err:
            self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf_path],
                                         stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "stderr"), "rb") as f:
                    raise RuntimeError("nginx exited: " + f.read().decode("utf-8", "replace")[-2000:])
            try:
                status, _, _ = h.http_request(self.host, self.port, "GET", "/healthz", timeout=2)
                return status == 200
            except OSError:
                return False
        h.wait_until(up, timeout, "nginx on " + self.address)
        return self

    def close(self):
        if self.proc is not None:
            h._stop_process(self.proc, timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
