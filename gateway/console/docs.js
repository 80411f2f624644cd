// /docs: the gateway's OpenAPI document (/openapi.json) as a page, with no viewer library:
// operations grouped by tag, each with its parameters, request body and responses. Every
// string from the document goes in as text, never as markup.

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// "#/components/schemas/Video" -> "Video"; inline schemas by their type.
function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `array of ${schemaName(schema.items)}`;
  if (schema.anyOf || schema.oneOf) {
    return (schema.anyOf || schema.oneOf).map(schemaName).join(" | ");
  }
  return Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "object";
}

function contentLines(content) {
  return Object.entries(content || {}).map(
    ([type, media]) => el("li", {}, el("code", {}, type), " ", schemaName(media.schema)));
}

function operationView(path, method, op, shared) {
  const params = [...(shared || []), ...(op.parameters || [])];
  const details = el("details", { class: "card", "data-testid": "operation" });
  details.append(el("summary", {}, el("code", {}, `${method.toUpperCase()} ${path}`),
    " ", op.summary || ""));
  if (op.description) details.append(el("p", {}, op.description));
  const security = (op.security || []).flatMap(Object.keys);
  details.append(el("p", { class: "hint" },
    security.length ? `Authorization: ${security.join(" or ")}` : "No key needed"));
  if (params.length) {
    const rows = params.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)),
      el("td", {}, p.in), el("td", {}, p.required ? "required" : ""),
      el("td", {}, schemaName(p.schema)), el("td", {}, p.description || "")));
    details.append(el("h4", {}, "Parameters"), el("table", {}, el("tbody", {}, ...rows)));
  }
  if (op.requestBody) {
    details.append(el("h4", {}, "Request body"),
      el("ul", {}, ...contentLines(op.requestBody.content)));
  }
  const responses = Object.entries(op.responses || {}).map(([code, answer]) =>
    el("li", {}, el("strong", {}, code), " ", answer.description || "",
      el("ul", {}, ...contentLines(answer.content))));
  details.append(el("h4", {}, "Responses"), el("ul", {}, ...responses));
  return details;
}

async function show() {
  const status = document.getElementById("docs-status");
  const answer = await fetch("/openapi.json");
  if (!answer.ok) {
    status.textContent = `/openapi.json answered HTTP ${answer.status}`;
    return;
  }
  const spec = await answer.json();
  const byTag = new Map((spec.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(path, method, op, item.parameters));
    }
  }
  const root = document.getElementById("docs");
  for (const tag of spec.tags || []) {
    const views = byTag.get(tag.name) || [];
    if (views.length) root.append(el("h2", {}, tag.name), el("p", {}, tag.description || ""),
      ...views);
  }
  const count = [...byTag.values()].reduce((sum, views) => sum + views.length, 0);
  status.textContent = `${spec.info.title} ${spec.info.version}, OpenAPI ${spec.openapi}: ` +
    `${count} operations.`;
}

show().catch((error) => {
  document.getElementById("docs-status").textContent = `Could not read the API: ${error}`;
});
