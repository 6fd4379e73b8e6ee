// Swarm service templates: every supported placeholder, whitespace inside the braces, several
// in one string, and errors that name unknown or malformed placeholders.

import { test } from "node:test";
import assert from "node:assert/strict";
import { TemplateError, expandTemplate, templateContext } from "../../src/node/template.js";

const ctx = templateContext({
  taskId: "tsk9x",
  slot: 3,
  serviceId: "svc42",
  serviceName: "web",
  nodeId: "nd7",
  nodeHostname: "worker-1",
});

test("placeholders expand", () => {
  const table: Array<[string, string]> = [
    ["{{.Task.Slot}}", "3"],
    ["{{.Task.ID}}", "tsk9x"],
    ["{{.Task.Name}}", "web.3"],
    ["{{.Service.Name}}", "web"],
    ["{{.Service.ID}}", "svc42"],
    ["{{.Node.Hostname}}", "worker-1"],
    ["{{.Node.ID}}", "nd7"],
    ["{{ .Task.Slot }}", "3"],
    ["{{\t.Node.Hostname  }}", "worker-1"],
    ["replica-{{.Task.Slot}}.{{.Service.Name}}", "replica-3.web"],
    ["{{.Node.Hostname}}-{{.Node.ID}}-{{.Service.Name}}", "worker-1-nd7-web"],
    ["no templates here", "no templates here"],
    ["", ""],
    ["a } b }} c {", "a } b }} c {"],
  ];
  for (const [input, want] of table) assert.equal(expandTemplate(input, ctx), want, input);
});

test("a numeric slot works as well as a string", () => {
  const c = { ...ctx, Task: { ...ctx.Task, Slot: 12 } };
  assert.equal(expandTemplate("s{{.Task.Slot}}", c), "s12");
});

test("unknown or malformed placeholders are errors that name them", () => {
  const table: Array<[string, string[]]> = [
    ["{{.Task.Nope}}", ["{{.Task.Nope}}"]],
    ["{{.Cluster.Name}}", ["{{.Cluster.Name}}"]],
    ["{{.Task}}", ["{{.Task}}"]],
    ["{{Task.Slot}}", ["{{Task.Slot}}"]],
    ["{{.Task.Slot | printf}}", ["{{.Task.Slot | printf}}"]],
    ["{{}}", ["{{}}"]],
    ["a{{.Task.Slot}}{{.X.Y}}b{{ .Node.Zone }}", ["{{.X.Y}}", "{{ .Node.Zone }}"]],
    ["{{.Task.Slot", ["{{.Task.Slot"]],
  ];
  for (const [input, bad] of table) {
    assert.throws(
      () => expandTemplate(input, ctx),
      (err: unknown) => {
        assert.ok(err instanceof TemplateError, input);
        assert.equal(err.code, "ERR_TEMPLATE");
        assert.deepEqual(err.placeholders, bad, input);
        for (const b of bad) assert.ok(err.message.includes(b), err.message);
        return true;
      },
    );
  }
});
