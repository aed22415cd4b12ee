"""deploy/monitoring: the Prometheus rules and the Grafana dashboard, checked with
Prometheus's own promtool and against a running pullgate.

Covers: `promtool check rules` accepts pullgate.rules.yml; `promtool test rules` runs
the alert unit tests in deploy/monitoring/tests.yml (synthetic series: an alert fires
when it should and not before); every dashboard query parses as PromQL (each wrapped
as a recording rule, Grafana's variables replaced, and checked by promtool); the
dashboard takes its data source and instances from variables; every metric the rules
and the dashboard name is one a real pullgate exports: a gated pullgate with the fleet
store on (one etcd member), after a pull and a denial, serves each on /metrics (a
labelled family without samples shows only its HELP and TYPE lines, which count); and a
real Prometheus scraping that pullgate evaluates every rule without an error and
answers every dashboard query, the SLI panels and fleet panels with data."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

import fleet_harness as fh
import harness as h

MONITORING = os.path.join(h.REPO_ROOT, "deploy", "monitoring")
RULES = os.path.join(MONITORING, "pullgate.rules.yml")
DASHBOARD = os.path.join(MONITORING, "pullgate-dashboard.json")
UNIT_TESTS = os.path.join(MONITORING, "tests.yml")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

ACCEPT = [("Accept", h.ALL_MANIFEST_ACCEPT)]
POLICY = {
    "default": {"mode": "enforce", "unknown": "evaluate", "fallback": "allow"},
    "scopes": [{"name": "blocked", "repository": "it/blocked/**",
                "rules": [{"action": "deny", "repository": "it/blocked/**", "reason": "not vetted yet"}]}],
}

# Metrics Prometheus makes itself, not pullgate.
PROMETHEUS_OWN = {"up"}
# What a dashboard query may hold that is not PromQL: Grafana's variables, each
# replaced with something of the same kind.
GRAFANA_VARIABLES = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                     ("${instance}", ".*"), ("$instance", ".*"), ("${replica}", ".*"), ("$replica", ".*")]
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "offset", "bool", "inf", "nan"}


def promtool(*args, timeout=120):
    return subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, timeout=timeout)


def load_yaml_rules(path):
    """[(group, rule dict)] of a rules file. PyYAML is not required: the file is read
    by promtool for checks; here only `record:`/`alert:`/`expr:` are needed, read line
    by line (a folded `expr: >-` block continues while lines are indented deeper)."""
    rules, current, expr_indent, expr_lines = [], None, None, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")

    def finish_expr():
        nonlocal expr_lines
        if expr_lines is not None:
            current["expr"] = " ".join(expr_lines)
            expr_lines = None

    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if expr_lines is not None:
            if stripped and indent > expr_indent:
                expr_lines.append(stripped)
                continue
            finish_expr()
        if stripped.startswith("#") or not stripped:
            continue
        m = re.match(r"- (record|alert): (\S+)$", stripped)
        if m:
            current = {m.group(1): m.group(2), "annotations": []}
            rules.append(current)
            continue
        if current is None:
            continue
        if stripped.startswith("expr:"):
            value = stripped[len("expr:"):].strip()
            if value in (">-", ">", "|", "|-"):
                expr_indent, expr_lines = indent, []
            else:
                current["expr"] = value
        elif re.match(r"(summary|description):", stripped):
            current["annotations"].append(stripped)
    finish_expr()
    return rules


def dashboard_queries(dashboard):
    """[(panel title, expr)] of every panel target, rows' nested panels included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))
    walk(dashboard["panels"])
    return out


def as_promql(expr):
    for var, value in GRAFANA_VARIABLES:
        expr = expr.replace(var, value)
    return expr


def metric_names(expr):
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, functions, keywords and numbers are taken out."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+\w+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", s):
        if m.group(2) or m.group(1) in PROMQL_WORDS:
            continue
        names.add(m.group(1))
    return names


def label_matchers(expr):
    """[(metric name, label name)] of the matchers written as name{label op "value"}."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", re.sub(r'"(?:[^"\\]|\\.)*"', '""', m.group(2))):
            out.append((m.group(1), label))
    return out


class Exports:
    """The metric names a /metrics body declares (HELP/TYPE) or has samples of (a
    histogram's _bucket, _sum and _count too), and the label names of each one's
    samples."""

    def __init__(self, text):
        self.names, self.labels = set(), {}
        for line in text.split("\n"):
            parts = line.split(" ")
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                self.names.add(parts[2])
                if line.startswith("# TYPE ") and parts[3] == "histogram":
                    self.names.update(parts[2] + s for s in ("_bucket", "_sum", "_count"))
            elif line and not line.startswith("#"):
                m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^ ]*\})?", line)
                self.names.add(m.group(1))
                labels = self.labels.setdefault(m.group(1), set())
                labels.update(re.findall(r"([a-zA-Z_]\w*)=\"", m.group(2) or ""))


@unittest.skipUnless(PROMTOOL, "needs promtool (Debian's prometheus; deploy/install-deps.sh --test)")
class RulesAndDashboard(unittest.TestCase):
    def test_1_promtool_accepts_the_rules(self):
        run = promtool("check", "rules", RULES)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("SUCCESS", run.stdout)

    def test_2_alert_unit_tests_pass(self):
        run = promtool("test", "rules", UNIT_TESTS)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_3_every_alert_follows_the_conventions(self):
        with open(RULES, encoding="utf-8") as f:
            text = f.read()
        alerts = [r for r in load_yaml_rules(RULES) if "alert" in r]
        self.assertGreaterEqual(len(alerts), 10)
        blocks = re.split(r"\n      - (?=alert: |record: )", text)
        for a in alerts:
            block = next(b for b in blocks if b.startswith("alert: %s\n" % a["alert"]))
            self.assertRegex(block, r"\n        labels:\n          severity: (critical|warning|info)\n", a["alert"])
            for key in ("summary", "description", "runbook"):
                self.assertRegex(block, r"\n          %s: " % key, "%s has no %s" % (a["alert"], key))
            for doc in re.findall(r'runbook: "([^"#]+)', block):
                self.assertTrue(os.path.exists(os.path.join(h.REPO_ROOT, doc)), "%s: runbook %s" % (a["alert"], doc))
        with open(os.path.join(MONITORING, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        for a in alerts:  # each alert has its own section in the README
            self.assertIn("### %s" % a["alert"], readme)

    def test_4_every_dashboard_query_parses(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            dashboard = json.load(f)
        queries = dashboard_queries(dashboard)
        self.assertGreaterEqual(len(queries), 20)
        work = tempfile.mkdtemp(prefix="pg-dashboard-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (title, expr) in enumerate(queries):
            promql = as_promql(expr)
            self.assertNotIn("$", promql, "a Grafana variable left in %r (%s)" % (expr, title))
            lines += ["      - record: dashboard:query_%d" % i, "        expr: %s" % json.dumps(promql)]
        path = os.path.join(work, "dashboard.rules.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        run = promtool("check", "rules", path)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("SUCCESS: %d rules found" % len(queries), run.stdout)

    def test_5_dashboard_takes_its_source_and_instances_from_variables(self):
        with open(DASHBOARD, encoding="utf-8") as f:
            dashboard = json.load(f)
        self.assertGreaterEqual(dashboard["schemaVersion"], 39)
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("instance", "replica"):
            self.assertEqual(variables[name]["datasource"]["uid"], "${datasource}")
        for p in dashboard["panels"]:
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
                self.assertIn('instance=~"$instance"', t["expr"], p["title"])
        titles = {p["title"] for p in dashboard["panels"]}
        for wanted in ("Availability", "Decision latency p99", "Pass rate", "Blocks", "Cache hit ratio",
                       "Upstream failures and rate limits", "Fleet store up", "Replica in step",
                       "Pending scans", "Audit queue"):
            self.assertIn(wanted, titles)

    def test_6_metric_name_extraction(self):
        # The reader the next test relies on, on the shapes the files use.
        self.assertEqual(metric_names('sum by (instance, le) (rate(a_bucket{x="b{c}"}[5m] offset 1h)) / b'),
                         {"a_bucket", "b"})
        self.assertEqual(metric_names("x > 16 * 1024 and on (instance) y:z:rate5m unless w == 0"),
                         {"x", "y:z:rate5m", "w"})
        self.assertEqual(metric_names("1 - a / (b > 0) or vector(0)"), {"a", "b"})
        self.assertEqual(label_matchers('a{kind="x",status=~"5..|error"} / b{instance=~".*"}'),
                         [("a", "kind"), ("a", "status"), ("b", "instance")])


class NamesAgainstARunningPullgate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (fh.have_etcd()):  # a missing service fails the suite, never skips it
            raise RuntimeError("needs etcd-server and nginx-light: deploy/install-deps.sh --test")
        cls.work, cls.registry = h.workdir_and_upstream(cls)
        cls.app = h.seed_oci(cls.registry, repo="it/app", seed="monitoring-app")
        cls.blocked = h.seed_oci(cls.registry, repo="it/blocked/app", seed="monitoring-blocked")
        cls.etcd = fh.EtcdCluster(cls.work.path, 1).start()
        cls.addClassCleanup(cls.etcd.close)
        fleet = {"replica_id": "monitoring-a", "etcd": {"endpoints": cls.etcd.endpoints, "request_timeout_s": 2}}
        cls.pg = h.GatedPullgate(cls.work.path, [h.upstream_entry(cls.registry)], POLICY,
                                 extra={"fleet": fleet}).start()
        cls.addClassCleanup(cls.pg.close)
        cls.token = h.read_token(cls.pg)

        def ready():
            status, _, body = cls.pg.request("GET", "/readyz", timeout=5)
            return status == 200 and json.loads(body).get("status") == "ok"
        h.wait_until(ready, 20, "pullgate in step with etcd")

    def test_every_metric_the_rules_and_dashboard_name_is_exported(self):
        pg, app = self.pg, self.app
        status, _, _ = pg.request("GET", "/v2/%s/manifests/%s" % (app.repo, app.tag), headers=ACCEPT)
        self.assertEqual(status, 200)
        status, _, body = pg.request("GET", "/v2/%s/blobs/%s" % (app.repo, app.config_digest))
        self.assertEqual((status, body), (200, app.config))
        status, _, _ = pg.request("GET", "/v2/%s/manifests/%s" % (self.blocked.repo, self.blocked.tag), headers=ACCEPT)
        self.assertEqual(status, 403)

        def metrics():
            status, _, body = h.admin_request(pg, self.token, "GET", "/metrics")
            text = body.decode()
            return text if status == 200 and "pullgate_gate_denials_total{" in text else None
        exports = Exports(h.wait_until(metrics, 10, "the denial counted in /metrics"))
        for family in ("pullgate_fleet_store_up", "pullgate_fleet_in_step", "pullgate_gate_decisions_total",
                       "pullgate_upstream_requests_total"):
            self.assertIn(family, exports.names)

        rules = load_yaml_rules(RULES)
        recorded = {r["record"] for r in rules if "record" in r}
        with open(DASHBOARD, encoding="utf-8") as f:
            queries = dashboard_queries(json.load(f))
        named = []  # (where, name)
        for r in rules:
            where = r.get("alert") or r.get("record")
            named += [(where, n) for n in metric_names(r["expr"])]
            for annotation in r["annotations"]:  # queries inside templates
                named += [(where + " annotation", n) for n in re.findall(r"(?<![\w:])pullgate_\w+(?![\w:])", annotation)]
        for title, expr in queries:
            named += [("panel " + title, n) for n in metric_names(as_promql(expr))]
        self.assertGreater(len({n for _, n in named}), 30)
        missing = sorted({"%s: %s" % (where, n) for where, n in named
                          if n not in exports.names and n not in recorded and n not in PROMETHEUS_OWN})
        self.assertEqual(missing, [], "named in deploy/monitoring but not on a running pullgate's /metrics")
        # Label names in matchers are the family's, where it has samples to show them
        # (instance and job are Prometheus's).
        exprs = [r["expr"] for r in rules] + [as_promql(e) for _, e in queries]
        wrong = sorted({"%s{%s}" % (name, label) for e in exprs for name, label in label_matchers(e)
                        if name in exports.labels and label not in exports.labels[name] | {"instance", "job"}})
        self.assertEqual(wrong, [], "label names a running pullgate does not use")
        # The dashboard stands alone: it names no recording rule, only exported metrics.
        for title, expr in queries:
            self.assertFalse(metric_names(as_promql(expr)) & recorded, title)


    def pull_and_deny(self):
        status, _, _ = self.pg.request("GET", "/v2/%s/manifests/%s" % (self.app.repo, self.app.tag), headers=ACCEPT)
        self.assertEqual(status, 200)
        status, _, _ = self.pg.request("GET", "/v2/%s/manifests/%s" % (self.blocked.repo, self.blocked.tag),
                                       headers=ACCEPT)
        self.assertEqual(status, 403)

    @unittest.skipUnless(PROMETHEUS, "needs prometheus (deploy/install-deps.sh --test)")
    def test_a_real_prometheus_evaluates_the_rules_and_answers_the_dashboard(self):
        prom = Prometheus(self.work.path, self.pg, self.token).start()
        self.addCleanup(prom.close)
        h.wait_until(lambda: prom.query('up{job="pullgate"} == 1'), 30, "Prometheus scraping pullgate")

        # Traffic across scrapes, until rate() over it has two samples to go on.
        def pass_rate_recorded():
            self.pull_and_deny()
            return prom.query("instance:pullgate_gate_pass:ratio_rate5m")
        h.wait_until(pass_rate_recorded, 30, "the pass rate recorded", interval=0.5)

        def all_rules_evaluated():
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            return rules if all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
        rules = h.wait_until(all_rules_evaluated, 30, "every rule evaluated")
        self.assertEqual(len(rules), len(load_yaml_rules(RULES)))
        self.assertEqual([(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"], [])
        alerts = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
        self.assertNotIn("PullgateDown", alerts)

        with open(DASHBOARD, encoding="utf-8") as f:
            queries = dashboard_queries(json.load(f))
        answers = {}
        for title, expr in queries:
            promql = as_promql(expr).replace("[5m]", "[1m]")
            answers.setdefault(title, []).append(prom.query(promql))  # raises on an error
        for title in ("Availability", "Pass rate", "Decision latency p99", "Cache hit ratio", "Blocks",
                      "Instances up", "Upstream requests by status", "Fleet store up", "Replica in step",
                      "Pending scans", "Audit queue", "Metadata map (LMDB)"):
            self.assertTrue(all(answers[title]), "no data for panel %r: %r" % (title, answers[title]))
        (store_up,) = answers["Fleet store up"][0]
        self.assertEqual((store_up["metric"].get("replica"), store_up["value"][1]), ("monitoring-a", "1"))
        (availability,) = prom.query("instance:pullgate_availability:ratio_rate5m")
        self.assertEqual(availability["value"][1], "1")
        (pass_rate,) = prom.query("instance:pullgate_gate_pass:ratio_rate5m")  # one allowed, one denied, each time
        self.assertEqual(pass_rate["value"][1], "0.5")


class Prometheus:
    """Debian's prometheus scraping one pullgate's admin listener every second, with
    deploy/monitoring's rules evaluated every second; data in a temp dir."""

    def __init__(self, workdir, pg, token):
        self.dir = tempfile.mkdtemp(prefix="prometheus-", dir=workdir)
        self.port = h.free_port()
        token_path = os.path.join(self.dir, "pullgate.token")
        with open(token_path, "w") as f:
            f.write(token)
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "rule_files": [RULES],
                       "scrape_configs": [{"job_name": "pullgate",
                                           "authorization": {"credentials_file": token_path},
                                           "static_configs": [{"targets": [pg.admin_address]}]}]}, f)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self, timeout=30):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file", self.config_path, "--storage.tsdb.path", os.path.join(self.dir, "data"),
                 "--web.listen-address", "127.0.0.1:%d" % self.port],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited: " + self.log())
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as r:
                return r.status == 200
        h.wait_until(ready, timeout, "prometheus ready")
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise AssertionError("%s: %s" % (params or path, e.read().decode()))
        if doc.get("status") != "success":
            raise AssertionError("%s: %r" % (params or path, doc))
        return doc["data"]

    def query(self, promql):
        return self.api("query", query=promql)["result"]

    def close(self):
        if self.proc is not None:
            h._stop_process(self.proc, timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
