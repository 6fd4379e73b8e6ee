// Prometheus' HTTP service discovery of a swarm: every node with a /metrics port, every running
// task of a service that declares `prometheus.io/port`, on the host port its target maps to.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { prometheusTargets } from "../../src/manager/prometheus-sd.js";
import { node, service, task } from "../store/helpers.js";

test("node targets and the tasks of services that declare a metrics port", async () => {
  const store = createMemoryStore();
  const svc = (id: string, name: string, labels: Record<string, string>) => {
    const s = service(id, name);
    return { ...s, spec: { ...s.spec, labels } };
  };
  const running = (id: string, serviceId: string, nodeId: string, hostPorts = {}) =>
    task(id, serviceId, nodeId, {
      hostPorts,
      status: { ...task("x", serviceId).status, state: "running" },
    });
  await store.update((tx) => {
    tx.putNode(node("n1", { addr: "10.0.0.1", hostname: "one", role: "manager" }));
    tx.putNode(node("n2", { addr: "10.0.0.2", hostname: "two" }));
    tx.putNode(node("n3", { addr: "10.0.0.3", hostname: "three", status: "down" }));
    tx.putService(svc("s1", "web", { "prometheus.io/port": "8000", "prometheus.io/path": "/m" }));
    tx.putService(svc("s2", "plain", {}));
    tx.putService(
      svc("s3", "off", { "prometheus.io/port": "9100", "prometheus.io/scrape": "false" }),
    );
    tx.putService(svc("s4", "fixed", { "prometheus.io/port": "9100" }));
    tx.putService(svc("s5", "bad", { "prometheus.io/port": "http" }));
    tx.putTask(running("a", "s1", "n1", { "8000": 31000 }));
    tx.putTask(running("b", "s1", "n2", { "8000": 31001 }));
    tx.putTask(task("c", "s1", "n2")); // not running yet
    tx.putTask(running("d", "s1", "n3", { "8000": 31002 })); // on a down node
    tx.putTask(running("e", "s2", "n1"));
    tx.putTask(running("f", "s3", "n1"));
    tx.putTask(running("g", "s4", "n2"));
    tx.putTask(running("h", "s5", "n2"));
  });
  const ports: Record<string, number> = { n1: 9323, n3: 9324 };
  const groups = store.view((tx) => prometheusTargets(tx, (id) => ports[id]));
  assert.deepEqual(
    groups.map((g) => [
      g.targets.join(),
      g.labels["shoal_kind"],
      g.labels["shoal_task_id"] ?? g.labels["shoal_node"],
    ]),
    [
      ["10.0.0.1:9323", "node", "one"],
      ["10.0.0.3:9324", "node", "three"],
      ["10.0.0.1:31000", "task", "a"],
      ["10.0.0.2:31001", "task", "b"],
      ["10.0.0.2:9100", "task", "g"],
    ],
  );
  assert.deepEqual(groups[2]!.labels, {
    shoal_kind: "task",
    shoal_service: "web",
    shoal_service_id: "s1",
    shoal_task_id: "a",
    shoal_task_slot: "1",
    shoal_node_id: "n1",
    shoal_node: "one",
    __metrics_path__: "/m",
  });
  assert.equal(groups[4]!.labels["__metrics_path__"], undefined);
});
