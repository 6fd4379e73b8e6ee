// Unit tests of --format: the Go-template subset, tables aligned as Docker's tabwriter, json.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  alignTabs,
  execute,
  parseTemplate,
  renderRows,
  TemplateError,
  type ListFormat,
} from "../../src/cli/template.js";

const row = { ID: "abc123", Name: "web", Self: true, Replicas: "3/3", Labels: { b: "2", a: "1" } };
const run = (t: string, r: Record<string, unknown> = row) => execute(parseTemplate(t), r);

test("fields, literal text and Go's printing of values", () => {
  assert.equal(run("{{.ID}}"), "abc123");
  assert.equal(run("id={{.ID}} name={{ .Name }}!"), "id=abc123 name=web!");
  assert.equal(run("{{.Self}}"), "true");
  assert.equal(run("{{.Labels}}"), "map[a:1 b:2]");
  assert.equal(run("{{.Labels.a}}"), "1");
  assert.equal(run("no actions"), "no actions");
  assert.equal(run(""), "");
});

test("json of the whole row and of a field, keys sorted as Go writes maps", () => {
  assert.equal(
    run("{{json .}}"),
    '{"ID":"abc123","Labels":{"a":"1","b":"2"},"Name":"web","Replicas":"3/3","Self":true}',
  );
  assert.equal(run("{{json .Name}}"), '"web"');
});

test("functions and pipelines", () => {
  assert.equal(run("{{upper .Name}}"), "WEB");
  assert.equal(run("{{.Name | upper}}"), "WEB");
  assert.equal(run('{{lower "ABC"}}'), "abc");
  assert.equal(run("{{title .Name}}"), "Web");
  assert.equal(run("{{truncate .ID 3}}"), "abc");
  assert.equal(run("{{pad .Name 1 2}}"), " web  ");
  assert.equal(run('{{join .L "-"}}', { L: ["a", "b"] }), "a-b");
  assert.equal(run('{{split .Name "e"}}'), "[w b]");
});

test("if / else if / else / end, and {{- -}} trimming", () => {
  assert.equal(run("{{if .Self}}*{{else}} {{end}}"), "*");
  assert.equal(run("{{if .Self}}*{{else}} {{end}}", { Self: false }), " ");
  assert.equal(run("{{if .A}}a{{else if .B}}b{{else}}c{{end}}", { A: "", B: 1 }), "b");
  assert.equal(run("{{if .A}}a{{else if .B}}b{{else}}c{{end}}", { A: "", B: 0 }), "c");
  assert.equal(run("{{if .A}}{{if .B}}ab{{end}}{{end}}.", { A: 1, B: 1 }), "ab.");
  assert.equal(run("x  {{- .Name -}}  y"), "xweby");
});

test("what the subset does not do is a clear error", () => {
  const bad = (t: string, re: RegExp) =>
    assert.throws(
      () => run(t),
      (e: unknown) => e instanceof TemplateError && re.test(e.message),
    );
  bad("{{.Nope}}", /can't evaluate field Nope \(fields: ID, Name, Self, Replicas, Labels\)/);
  bad("{{range .Labels}}x{{end}}", /"range" is not supported: shoal's --format supports/);
  bad("{{with .Name}}x{{end}}", /"with" is not supported/);
  bad('{{printf "%s" .Name}}', /function "printf" not defined/);
  bad("{{$x := .Name}}", /variables .* are not supported/);
  bad("{{.Name", /unclosed action/);
  bad("{{if .Self}}x", /without \{\{end\}\}/);
  bad("{{end}}", /unexpected \{\{end\}\}/);
  bad("{{truncate .Name}}", /wrong number of args for truncate: want 2 got 1/);
  bad("{{truncate .Name .ID}}", /truncate: argument 2 must be a number/);
});

test("tables are aligned as Go's tabwriter (minimum width 10, padding 3)", () => {
  assert.equal(
    alignTabs(["ID\tNAME\tPORTS", "abcdefghijkl\tweb\t", "x\ta-much-longer-name\t*:80->8000/tcp"]),
    "ID             NAME                 PORTS\n" +
      "abcdefghijkl   web\n" +
      "x              a-much-longer-name   *:80->8000/tcp\n",
  );
});

const LIST: ListFormat = {
  defaultTable: "table {{.ID}}\t{{.Name}}",
  headers: { ID: "ID", Name: "NAME", DesiredState: "DESIRED STATE" },
};
const rows = [
  { ID: "1", Name: "a", DesiredState: "Running" },
  { ID: "2", Name: "bb", DesiredState: "Shutdown" },
];

test("renderRows: default table, custom table with headers, bare template, json", () => {
  assert.equal(renderRows(rows, undefined, LIST), "ID        NAME\n1         a\n2         bb\n");
  assert.equal(renderRows(rows, "table", LIST), renderRows(rows, undefined, LIST));
  // `\t` typed as two characters is a tab, as in Docker.
  assert.equal(
    renderRows(rows, "table {{.Name}}\\t{{.DesiredState}}", LIST),
    "NAME      DESIRED STATE\na         Running\nbb        Shutdown\n",
  );
  assert.equal(renderRows(rows, "{{.ID}}:{{.Name}}", LIST), "1:a\n2:bb\n");
  assert.equal(
    renderRows(rows, "json", LIST),
    '{"DesiredState":"Running","ID":"1","Name":"a"}\n{"DesiredState":"Shutdown","ID":"2","Name":"bb"}\n',
  );
  assert.equal(renderRows(rows, "{{json .}}", LIST), renderRows(rows, "json", LIST));
  // A header for a field without one, and an if in the header, stay quiet.
  assert.equal(
    renderRows(
      [{ ID: "1", Self: true, Name: "a" }],
      "table {{.ID}} {{if .Self}}*{{else}} {{end}}\\t{{.Name}}",
      LIST,
    ),
    "ID        NAME\n1 *       a\n",
  );
  assert.equal(renderRows([], "table {{.ID}}", LIST), "ID\n");
  assert.equal(renderRows([], "{{.ID}}", LIST), "");
});
