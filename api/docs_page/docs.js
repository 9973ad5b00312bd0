// The /docs page: fetch this daemon's /openapi.json and render it as a reference:
// operations grouped by tag, their parameters, bodies and responses, the webhooks,
// and every schema. Text is only ever set as text (never parsed as HTML).
"use strict";

const METHODS = ["get", "post", "put", "delete", "patch"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// `code` spans in descriptions; everything else stays plain text.
function append(parent, ...children) {
  parent.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined));
}

function prose(text) {
  return (text || "").split(/(`[^`]+`)/).map((part) =>
    part.startsWith("`") && part.endsWith("`") && part.length > 1
      ? el("code", {}, part.slice(1, -1))
      : part
  );
}

function paragraphs(text) {
  return (text || "").split(/\n\s*\n/).map((para) => el("p", {}, prose(para)));
}

function refName(ref) {
  return ref.split("/").pop();
}

function schemaLink(name) {
  return el("a", { href: "#schema-" + name }, name);
}

// A schema in a few words: `string`, `integer 1-50`, `array of TaskOutput`, ...
function typeOf(schema) {
  if (!schema || Object.keys(schema).length === 0) return ["any"];
  if (schema.$ref) return [schemaLink(refName(schema.$ref))];
  const alternatives = schema.anyOf || schema.oneOf;
  if (alternatives) {
    const parts = [];
    alternatives.forEach((alt, i) => {
      if (i) parts.push(" or ");
      parts.push(...typeOf(alt));
    });
    return parts;
  }
  if (schema.enum) return ["one of: ", schema.enum.map((v) => JSON.stringify(v)).join(", ")];
  if (schema.const !== undefined) return [JSON.stringify(schema.const)];
  if (schema.type === "array") return ["array of ", ...typeOf(schema.items)];
  if (schema.type === "object" && schema.additionalProperties) {
    return ["object of ", ...typeOf(schema.additionalProperties)];
  }
  const words = [schema.type || "any"];
  if (schema.format) words.push(`(${schema.format})`);
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    words.push(`${schema.minimum ?? ""}–${schema.maximum ?? ""}`);
  }
  if (schema.minLength !== undefined || schema.maxLength !== undefined) {
    words.push(`length ${schema.minLength ?? 0}–${schema.maxLength ?? ""}`);
  }
  if (schema.maxItems !== undefined) words.push(`≤ ${schema.maxItems} items`);
  const out = [words.join(" ")];
  if (schema.pattern) out.push(" ", el("code", {}, schema.pattern));
  return out;
}

function propertiesTable(schema) {
  const required = new Set(schema.required || []);
  const rows = Object.entries(schema.properties || {}).map(([name, prop]) =>
    el("tr", {},
      el("td", { class: "name" }, name, required.has(name) ? el("span", { class: "req" }, " *") : null),
      el("td", {}, typeOf(prop)),
      el("td", {}, prose(prop.description),
        prop.default !== undefined ? el("div", { class: "muted" }, "default " + JSON.stringify(prop.default)) : null))
  );
  return el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "meaning")), rows);
}

function parametersTable(params) {
  const rows = params.map((p) =>
    el("tr", {},
      el("td", { class: "name" }, p.name, p.required ? el("span", { class: "req" }, " *") : null),
      el("td", {}, p.in),
      el("td", {}, typeOf(p.schema)),
      el("td", {}, prose(p.description)))
  );
  return el("table", {},
    el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "meaning")),
    rows);
}

function bodyOf(content) {
  return Object.entries(content || {}).map(([type, media]) =>
    el("div", {}, el("code", {}, type), " ", typeOf(media.schema)));
}

function responsesTable(responses) {
  const rows = Object.entries(responses || {}).map(([code, r]) =>
    el("tr", {}, el("td", { class: "name" }, code), el("td", {}, prose(r.description)), el("td", {}, bodyOf(r.content))));
  return el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning"), el("th", {}, "body")), rows);
}

function operation(method, path, op, anchor) {
  const open = Array.isArray(op.security) && op.security.length === 0;
  return el("section", { class: "op", id: anchor },
    el("h3", {}, el("span", { class: "method " + method }, method), " ", el("span", { class: "path" }, path)),
    el("p", {}, prose(op.summary), " ",
      el("span", { class: "muted" }, `operationId ${op.operationId} · ${open ? "no token" : "Bearer token"}`)),
    op.parameters && op.parameters.length ? [el("h4", {}, "Parameters"), parametersTable(op.parameters)] : null,
    op.requestBody ? [el("h4", {}, "Body"), bodyOf(op.requestBody.content)] : null,
    el("h4", {}, "Responses"), responsesTable(op.responses));
}

function render(doc) {
  const main = document.getElementById("doc");
  const toc = document.getElementById("toc");
  main.replaceChildren();
  toc.replaceChildren(el("strong", {}, doc.info.title + " API"));
  append(main, el("h1", {}, doc.info.title + " API"), paragraphs(doc.info.description),
    el("p", { class: "muted" }, "OpenAPI " + doc.openapi + " · ", el("a", { href: "openapi.json" }, "openapi.json")));

  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["Other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push([method, path, op]);
    }
  }
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    const id = "tag-" + tag.name.replace(/\W+/g, "-");
    append(main, el("h2", { id }, tag.name), paragraphs(tag.description));
    append(toc, el("h2", {}, tag.name));
    for (const [method, path, op] of ops) {
      append(main, operation(method, path, op, "op-" + op.operationId));
      append(toc, el("a", { href: "#op-" + op.operationId }, el("span", { class: "method " + method }, method), " ", op.summary));
    }
  }

  const hooks = Object.entries(doc.webhooks || {});
  if (hooks.length) {
    append(main, el("h2", { id: "webhooks" }, "Webhooks"),
      el("p", {}, "What callbackd POSTs to a task's webhook URLs."));
    append(toc, el("h2", {}, "Webhooks"));
    for (const [name, item] of hooks) {
      const op = item.post;
      append(main, operation("post", "{" + name + " URL}", op, "op-" + op.operationId));
      append(toc, el("a", { href: "#op-" + op.operationId }, name));
    }
  }

  const schemas = Object.entries((doc.components || {}).schemas || {});
  append(main, el("h2", { id: "schemas" }, "Schemas"));
  append(toc, el("h2", {}, "Schemas"));
  for (const [name, schema] of schemas) {
    append(main, el("section", { class: "schema", id: "schema-" + name },
      el("h3", {}, name), paragraphs(schema.description),
      schema.properties ? propertiesTable(schema) : el("p", {}, typeOf(schema))));
    append(toc, el("a", { href: "#schema-" + name }, name));
  }
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

fetch("openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then(render)
  .catch((err) => {
    document.getElementById("status").textContent = "Could not load openapi.json: " + err.message;
  });
