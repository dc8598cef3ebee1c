"""docker/kubernetes/ keeps the promises its comments make: every manifest parses (PyYAML), and
the invariants a careless edit would break silently, only to show in production, hold:

* the Deployment: 2+ replicas, readiness on /readyz and liveness on /healthz at the metrics
  port that postern.toml's [metrics] listens on, a preStop sleep, a grace period longer than that
  sleep plus server.shutdown_timeout, non-root with a fixed uid, a read-only root file system,
  no privilege escalation, every capability dropped (so listeners on high ports only),
  seccomp RuntimeDefault;
* no volume mount anywhere uses subPath (a subPath mount never sees a Secret's update);
  certificates_dir is a projected Secret volume mapping each kubernetes.io/tls Secret's
  tls.crt/tls.key to <folder>/fullchain.pem and privkey.pem; the ticket-key file is in a
  Secret volume mounted as a folder;
* the Service: LoadBalancer, externalTrafficPolicy Local, each port onto a listener's high
  port; the PROXY annotation only together with accept_proxy on every listener;
* the rotation: a daily CronJob, its ServiceAccount bound to a Role limited to the one Secret;
* cert-manager: each Certificate's secretName is projected into certificates_dir and back.

No cluster: the files are read, and `postern check` runs on the ConfigMap's postern.toml with
the Secret volumes laid out as the kubelet writes them (..data symlink, one symlinked subfolder
per certificate), certificates from the test PKI.
"""

import base64
import os
import re
import shutil
import tempfile
import tomllib
import unittest
from pathlib import Path, PurePosixPath

import yaml

import harness

K8S = harness.REPO / "docker" / "kubernetes"
PROXY_ANNOTATIONS = (
    "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol",
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes",
)


def duration_seconds(value) -> float:
    """server.shutdown_timeout as postern reads it: whole seconds or "<n>ms|s|m|h"."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", value)
    assert m, f"not a duration: {value!r}"
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def load_manifests(folder: Path) -> list[dict]:
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


class KubernetesManifests(unittest.TestCase):
    folder = K8S

    @classmethod
    def setUpClass(cls):
        cls.docs = load_manifests(cls.folder)
        cls.deployment = cls.one("Deployment", "postern")
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.container = next(c for c in cls.pod["containers"] if c["name"] == "postern")
        cls.volumes = {v["name"]: v for v in cls.pod.get("volumes", [])}
        cls.mounts = {m["mountPath"]: m for m in cls.container.get("volumeMounts", [])}
        cls.config_path, cls.config_text = cls.config_file()
        cls.config = tomllib.loads(cls.config_text)

    @classmethod
    def one(cls, kind: str, name: str) -> dict:
        found = [d for d in cls.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    @classmethod
    def kind(cls, kind: str) -> list[dict]:
        return [d for d in cls.docs if d["kind"] == kind]

    @classmethod
    def config_file(cls) -> tuple[str, str]:
        """The postern.toml the container's --config names, from the ConfigMap mounted there."""
        args = cls.container.get("args", [])
        path = PurePosixPath(args[args.index("--config") + 1])
        mount = cls.mounts[str(path.parent)]
        volume = cls.volumes[mount["name"]]
        config_map = cls.one("ConfigMap", volume["configMap"]["name"])
        return str(path), config_map["data"][path.name]

    def mount_of(self, path: str) -> tuple[dict, dict]:
        """The volume mount holding `path` directly (a folder mount), and its volume."""
        mount = self.mounts.get(str(PurePosixPath(path)))
        self.assertIsNotNone(mount, f"nothing mounted at {path}")
        return mount, self.volumes[mount["name"]]

    def pod_specs(self) -> list[tuple[str, dict]]:
        out = [("Deployment/postern", self.pod)]
        for job in self.kind("Job"):
            out.append((f"Job/{job['metadata']['name']}", job["spec"]["template"]["spec"]))
        for cron in self.kind("CronJob"):
            out.append((f"CronJob/{cron['metadata']['name']}",
                        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        return out

    # -- the files ---------------------------------------------------------------------------

    def test_kustomization_lists_every_manifest(self):
        kustomization = yaml.safe_load((self.folder / "kustomization.yaml").read_text())
        files = {p.name for p in self.folder.glob("*.yaml")} - {"kustomization.yaml"}
        self.assertEqual(set(kustomization["resources"]), files)
        for doc in self.docs:
            if doc["kind"] not in ("Namespace", "Kustomization"):
                with self.subTest(doc=f"{doc['kind']}/{doc['metadata']['name']}"):
                    self.assertEqual(doc["metadata"].get("namespace"), "mail")

    # -- the Deployment ----------------------------------------------------------------------

    def test_replicas(self):
        self.assertGreaterEqual(self.deployment["spec"]["replicas"], 2)
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        for key, value in self.deployment["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(labels.get(key), value)

    def resolve_port(self, port) -> int:
        if isinstance(port, int):
            return port
        return next(p["containerPort"] for p in self.container["ports"] if p.get("name") == port)

    def test_probes_on_the_metrics_port(self):
        metrics_port = port_of(self.config["metrics"]["listen"])
        self.assertEqual(metrics_port, 9150)
        self.assertIn(metrics_port, [p["containerPort"] for p in self.container["ports"]])
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            with self.subTest(probe=probe):
                get = self.container[probe]["httpGet"]
                self.assertEqual(get["path"], path)
                self.assertEqual(self.resolve_port(get["port"]), metrics_port)

    def prestop_sleep(self) -> float:
        pre_stop = self.container["lifecycle"]["preStop"]
        if "sleep" in pre_stop:
            return pre_stop["sleep"]["seconds"]
        command = pre_stop["exec"]["command"]
        self.assertEqual(PurePosixPath(command[0]).name, "sleep", command)
        return float(command[1])

    def test_grace_period_covers_prestop_and_drain(self):
        shutdown = duration_seconds(self.config["server"].get("shutdown_timeout", "30s"))
        sleep = self.prestop_sleep()
        self.assertGreater(sleep, 0)
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], sleep + shutdown)

    def test_security_context(self):
        for where, pod in self.pod_specs():
            pod_ctx = pod.get("securityContext", {})
            for container in pod["containers"]:
                ctx = container.get("securityContext", {})

                def effective(key):
                    return ctx.get(key, pod_ctx.get(key))

                with self.subTest(pod=where, container=container["name"]):
                    self.assertIs(effective("runAsNonRoot"), True)
                    self.assertIsInstance(effective("runAsUser"), int)
                    self.assertNotEqual(effective("runAsUser"), 0)
                    self.assertIs(ctx.get("readOnlyRootFilesystem"), True)
                    self.assertIs(ctx.get("allowPrivilegeEscalation"), False)
                    self.assertEqual(ctx.get("capabilities", {}).get("drop"), ["ALL"])
                    self.assertFalse(ctx.get("capabilities", {}).get("add"))
                    self.assertFalse(ctx.get("privileged", False))
                    self.assertEqual((effective("seccompProfile") or {}).get("type"),
                                     "RuntimeDefault")
        self.assertEqual(self.pod["securityContext"]["runAsUser"], 10001)  # docker/Dockerfile

    def test_listeners_on_high_ports_each_declared(self):
        declared = {p["containerPort"] for p in self.container["ports"]}
        for listener in self.config["listener"]:
            with self.subTest(listen=listener["listen"]):
                self.assertGreaterEqual(port_of(listener["listen"]), 1024)
                self.assertIn(port_of(listener["listen"]), declared)

    # -- Secrets mounted as folders -----------------------------------------------------------

    def test_no_subpath_anywhere(self):
        for where, pod in self.pod_specs():
            for container in pod["containers"] + pod.get("initContainers", []):
                for mount in container.get("volumeMounts", []):
                    with self.subTest(pod=where, mount=mount["mountPath"]):
                        self.assertNotIn("subPath", mount)
                        self.assertNotIn("subPathExpr", mount)

    def certificate_folders(self) -> dict[str, str]:
        """Projected certificates_dir: subfolder -> the Secret it comes from."""
        mount, volume = self.mount_of(self.config["tls"]["certificates_dir"])
        self.assertTrue(mount.get("readOnly"))
        self.assertIn("projected", volume, "certificates_dir must be a projected Secret volume")
        folders = {}
        for source in volume["projected"]["sources"]:
            self.assertEqual(list(source), ["secret"], source)
            secret = source["secret"]
            items = {i["key"]: PurePosixPath(i["path"]) for i in secret["items"]}
            self.assertEqual(set(items), {"tls.crt", "tls.key"}, secret["name"])
            self.assertEqual(items["tls.crt"].name, "fullchain.pem")
            self.assertEqual(items["tls.key"].name, "privkey.pem")
            folder = items["tls.crt"].parent
            self.assertEqual(items["tls.key"].parent, folder)
            self.assertEqual(len(folder.parts), 1, f"{folder}: one subfolder level")
            self.assertNotIn(str(folder), folders, "two Secrets in one subfolder")
            folders[str(folder)] = secret["name"]
        return folders

    def test_certificates_dir_is_a_projected_secret_folder(self):
        self.assertGreaterEqual(len(self.certificate_folders()), 1)

    def test_ticket_keys_file_in_a_secret_folder(self):
        path = PurePosixPath(self.config["tls"]["ticket_keys_file"])
        mount, volume = self.mount_of(str(path.parent))
        self.assertTrue(mount.get("readOnly"))
        self.assertIn("secret", volume)
        name = volume["secret"]["secretName"]
        self.assertEqual(self.one("Secret", name)["metadata"]["name"], name)
        # The file is the Secret's key itself (no renaming items), the one the script writes.
        self.assertNotIn("items", volume["secret"])
        script = self.one("ConfigMap", "postern-ticket-keys-rotate")["data"]["rotate.sh"]
        self.assertIn(f"field={path.name}\n", script)
        self.assertIn(f"secret={name}\n", script)
        # Applying the manifests again must never reset the keys the jobs wrote.
        secret = self.one("Secret", name)
        self.assertNotIn("data", secret)
        self.assertNotIn("stringData", secret)

    # -- the Service -------------------------------------------------------------------------

    def test_service_preserves_the_client_address(self):
        service = self.one("Service", "postern")
        spec = service["spec"]
        self.assertEqual(spec["type"], "LoadBalancer")
        self.assertEqual(spec["externalTrafficPolicy"], "Local")
        self.assertEqual(spec["selector"], self.deployment["spec"]["selector"]["matchLabels"])
        listeners = {port_of(l["listen"]): l for l in self.config["listener"]}
        ports = {p["port"]: p for p in spec["ports"]}
        self.assertEqual(set(ports), {25, 465, 587, 993, 143, 995, 110})
        for port, entry in ports.items():
            with self.subTest(port=port):
                self.assertEqual(entry["targetPort"], 10000 + port)
                self.assertIn(entry["targetPort"], listeners)
        self.assertNotIn(9150, ports, "metrics must not be on the balancer")
        # PROXY from the balancer and listeners that expect it go together, or no client gets in.
        annotations = service["metadata"].get("annotations") or {}
        proxied = any(a in annotations for a in PROXY_ANNOTATIONS)
        for listener in listeners.values():
            self.assertEqual(listener.get("accept_proxy", False), proxied, listener["listen"])

    # -- ticket-key rotation -----------------------------------------------------------------

    def test_rotation_cronjob_and_its_rbac(self):
        cron = self.one("CronJob", "postern-ticket-keys-rotate")
        minute, hour, *days = cron["spec"]["schedule"].split()
        self.assertEqual(len(days), 3, "five cron fields")
        self.assertTrue(minute.isdigit() and hour.isdigit(), "once a day at a fixed time")
        self.assertEqual(days, ["*", "*", "*"], "every day")
        self.assertEqual(cron["spec"]["concurrencyPolicy"], "Forbid")
        secret = self.one("Secret", "postern-ticket-keys")["metadata"]["name"]
        accounts = {spec["serviceAccountName"] for where, spec in self.pod_specs()
                    if where != "Deployment/postern"}
        self.assertEqual(accounts, {"postern-ticket-keys-rotate"})
        self.assertFalse(self.pod.get("automountServiceAccountToken", True),
                         "postern itself needs no API token")
        self.assertEqual(self.kind("ClusterRole") + self.kind("ClusterRoleBinding"), [])
        bindings = [b for b in self.kind("RoleBinding")
                    if any(s["kind"] == "ServiceAccount" and s["name"] in accounts
                           for s in b["subjects"])]
        self.assertEqual(len(bindings), 1)
        self.assertEqual(bindings[0]["roleRef"]["kind"], "Role")
        role = self.one("Role", bindings[0]["roleRef"]["name"])
        for rule in role["rules"]:
            with self.subTest(rule=rule):
                self.assertEqual(rule["apiGroups"], [""])
                self.assertEqual(rule["resources"], ["secrets"])
                self.assertEqual(rule.get("resourceNames"), [secret])
                self.assertLessEqual(set(rule["verbs"]), {"get", "update", "patch"})

    # -- cert-manager --------------------------------------------------------------------------

    def test_cert_manager_secrets_are_the_projected_ones(self):
        certificates = self.kind("Certificate")
        self.assertGreaterEqual(len(certificates), 1)
        issued = {c["spec"]["secretName"] for c in certificates}
        self.assertEqual(issued, set(self.certificate_folders().values()))
        default = self.config["tls"]["default_certificate"]
        for certificate in certificates:
            with self.subTest(certificate=certificate["metadata"]["name"]):
                self.assertEqual(certificate["apiVersion"], "cert-manager.io/v1")
                self.assertIn("name", certificate["spec"]["issuerRef"])
                self.assertIn(default, certificate["spec"]["dnsNames"])

    # -- postern check on the kubelet's layout -----------------------------------------------

    def test_postern_check_accepts_the_config_on_the_kubelet_layout(self):
        harness.require_postern()
        tmp = Path(tempfile.mkdtemp(prefix="postern-k8s-"))
        if not harness.KEEP_TMP:
            self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        pki = harness.Pki(tmp / "pki")
        dns = self.kind("Certificate")[0]["spec"]["dnsNames"]
        certs_dir = tmp / "certs"
        files = {}
        for folder in self.certificate_folders():
            pki.add(folder, dns, key="rsa" if folder.endswith("-rsa") else "ec", chain=True)
            files[f"{folder}/fullchain.pem"] = pki.crt(folder).read_bytes()
            files[f"{folder}/privkey.pem"] = pki.key(folder).read_bytes()
        write_secret_volume(certs_dir, files)
        keys_path = PurePosixPath(self.config["tls"]["ticket_keys_file"])
        keys_dir = tmp / "ticket-keys"
        keys = b"".join(base64.b64encode(os.urandom(80)) + b"\n" for _ in range(4))
        write_secret_volume(keys_dir, {keys_path.name: keys})
        text = (self.config_text
                .replace(f'"{self.config["tls"]["certificates_dir"]}"', f'"{certs_dir}"')
                .replace(f'"{keys_path}"', f'"{keys_dir / keys_path.name}"'))
        config = tmp / "postern.toml"
        config.write_text(text)
        out = harness.run([harness.POSTERN_BIN, "check", "--config", config], timeout=30)
        output = out.stdout + out.stderr
        unknown = re.findall(r"(\S+): unknown key", output)
        if unknown and set(unknown) <= {"tls.ticket_keys_file", "metrics"}:
            self.skipTest(f"this postern does not know {', '.join(unknown)} yet")
        self.assertEqual(out.returncode, 0, output)
        for name in dns:
            self.assertEqual(len(re.findall(rf"(?m)^{re.escape(name)}\s", out.stdout)),
                             len(files) // 2, output)


def write_secret_volume(folder: Path, files: dict[str, bytes]) -> None:
    """What the kubelet's atomic writer makes: a timestamped hidden folder with the files, ..data
    linking to it, and each top-level name a symlink into ..data."""
    version = folder / "..2026_12_02_12_00_00.000000001"
    for rel, data in files.items():
        (version / rel).parent.mkdir(parents=True, exist_ok=True)
        (version / rel).write_bytes(data)
        (version / rel).chmod(0o440)
    (folder / "..data").symlink_to(version.name)
    for top in sorted({PurePosixPath(rel).parts[0] for rel in files}):
        (folder / top).symlink_to(f"..data/{top}")


if __name__ == "__main__":
    unittest.main()
