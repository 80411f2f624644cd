// The gateway's web console: one module, no build step, nothing loaded from elsewhere.
// Everything shown is built with DOM nodes and text nodes (no markup is ever parsed from
// data), so prompts and names, which are user text, cannot inject markup.

const STORAGE = "seedance-gateway.key";
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);

let key = sessionStorage.getItem(STORAGE);
let timers = [];
const blobs = new Set(); // object URLs to revoke on sign-out

// --- DOM and formatting helpers -------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "testid") node.dataset.testid = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const node = document.createElementNS(svgNS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const money = (n, currency) =>
  n === null || n === undefined ? "–" : `${Number(n).toFixed(2)}${currency ? " " + currency : ""}`;
const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 16) : "–");
const limit = (n) => (n === null || n === undefined ? "∞" : number(n));

function notice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

// --- The API, with the signed-in key as Bearer ------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${key}`, ...(options.headers || {}) };
  let body = options.body;
  if (body && !(body instanceof FormData) && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { ...options, headers, body, cache: "no-store" });
  if (options.raw) {
    if (!response.ok) throw new ApiError(response.status, `${path}: HTTP ${response.status}`);
    return response;
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    const message = (error && (error.message || error.code)) || `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

async function blobUrl(path) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  blobs.add(url);
  return url;
}

// --- Sign in / out ---------------------------------------------------------------------------

async function roleOf() {
  try {
    await api("/admin/keys");
    return { role: "admin" };
  } catch (error) {
    if (error.status !== 401 && error.status !== 403) throw error;
  }
  try {
    return { role: "member", me: await api("/me") };
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  await api("/v1/videos?limit=1"); // a gateway without /me: the key works, no summary
  return { role: "member", me: null };
}

async function signIn(secret) {
  key = secret;
  notice("");
  try {
    const { role, me } = await roleOf();
    sessionStorage.setItem(STORAGE, secret);
    $("signin").hidden = true;
    $("signout").hidden = false;
    $("who").hidden = false;
    $("who").textContent = role === "admin" ? "Admin" : `Member ${me ? me.name : ""}`.trim();
    $("who").dataset.role = role;
    if (role === "admin") startAdmin();
    else startMember(me);
  } catch (error) {
    key = null;
    sessionStorage.removeItem(STORAGE);
    notice(error.status === 401 ? "That key was not accepted."
      : `Sign-in failed: ${error.message}`);
  }
}

function signOut() {
  for (const timer of timers) clearInterval(timer);
  timers = [];
  for (const url of blobs) URL.revokeObjectURL(url);
  blobs.clear();
  key = null;
  sessionStorage.removeItem(STORAGE);
  for (const id of ["admin", "member", "signout", "who", "secret-box", "generation"]) {
    $(id).hidden = true;
  }
  for (const id of ["keys-body", "tasks-body", "my-tasks-body", "chart", "me"]) {
    $(id).replaceChildren();
  }
  $("signin").hidden = false;
  $("signin-key").value = "";
  $("signin-key").focus();
  notice("");
}

function every(ms, task) {
  const run = () => task().catch((error) => notice(error.message));
  run();
  timers.push(setInterval(run, ms));
}

// --- Admin view -------------------------------------------------------------------------------

const LIMIT_FIELDS = [
  ["rpm", "Requests per minute"],
  ["max_in_flight", "Tasks in flight"],
  ["daily_tokens", "Daily tokens"],
  ["monthly_tokens", "Monthly tokens"],
  ["daily_cost", "Daily cost"],
  ["monthly_cost", "Monthly cost"],
];

function policyFields(prefix, values = {}) {
  const fields = [];
  if (prefix === "create") {
    fields.push(h("div", { class: "field" }, h("label", { for: "create-name" }, "Name"),
      h("input", { id: "create-name", name: "name", required: true,
        pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}", testid: "create-name" })));
  }
  fields.push(h("div", { class: "field" },
    h("label", { for: `${prefix}-models` }, "Models (comma separated, empty = all)"),
    h("input", { id: `${prefix}-models`, name: "models", testid: `${prefix}-models`,
      value: values.models && !values.models.includes("*") ? values.models.join(", ") : "" })));
  for (const [name, label] of LIMIT_FIELDS) {
    if (name.endsWith("_cost") && prefix !== "create" && !(name in values)) continue;
    fields.push(h("div", { class: "field" },
      h("label", { for: `${prefix}-${name}` }, `${label} (empty = no limit)`),
      h("input", { id: `${prefix}-${name}`, name, type: "number", min: "0",
        step: name.endsWith("_cost") ? "0.01" : "1", testid: `${prefix}-${name}`,
        value: values[name] ?? "" })));
  }
  return fields;
}

function policyFrom(form, { partial }) {
  const data = new FormData(form);
  const body = {};
  const models = String(data.get("models") || "").split(",").map((m) => m.trim()).filter(Boolean);
  body.models = models.length ? models : null; // empty: every model
  for (const [name] of LIMIT_FIELDS) {
    if (!data.has(name)) continue;
    const raw = String(data.get(name)).trim();
    // Cost budgets only go out when given: a gateway without prices does not know them.
    if (!raw && name.endsWith("_cost") && !partial) continue;
    body[name] = raw ? Number(raw) : null;
  }
  if (!partial) body.name = String(data.get("name")).trim();
  return body;
}

function showSecret(title, secret) {
  $("secret-title").textContent = title;
  $("secret-value").textContent = secret;
  $("secret-box").hidden = false;
}

async function keyAction(action, member) {
  try {
    if (action === "revoke") {
      if (!confirm(`Revoke ${member.name}? Its key stops working at once.`)) return;
      await api(`/admin/keys/${encodeURIComponent(member.name)}`, { method: "DELETE" });
    } else if (action === "rotate") {
      if (!confirm(`Rotate ${member.name}? The old key stops working at once.`)) return;
      const rotated = await api(`/admin/keys/${encodeURIComponent(member.name)}/rotate`,
        { method: "POST" });
      showSecret(`New key for ${member.name}`, rotated.key);
    } else if (action === "edit") {
      openEdit(member);
      return;
    }
    notice("");
    await refreshMembers();
  } catch (error) {
    notice(error.message);
  }
}

function openEdit(member) {
  const form = $("edit-form");
  form.replaceChildren(...policyFields("edit", member),
    h("button", { type: "submit", testid: "edit-save" }, "Save"),
    h("button", { type: "button", onclick: () => $("edit").close() }, "Cancel"));
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await api(`/admin/keys/${encodeURIComponent(member.name)}`,
        { method: "PATCH", body: policyFrom(form, { partial: true }) });
      $("edit").close();
      notice("");
      await refreshMembers();
    } catch (error) {
      notice(error.message);
    }
  };
  $("edit-title").textContent = `Edit ${member.name}`;
  $("edit").showModal();
}

function memberRow(member, totals) {
  const state = member.revoked ? "revoked" : member.disabled ? "disabled" : "active";
  const stored = member.source !== "config";
  const total = totals.get(member.name) || { tasks: 0, tokens: 0, cost: null };
  const actions = stored && !member.revoked
    ? ["edit", "rotate", "revoke"].map((action) =>
      h("button", { type: "button", testid: `key-${action}-${member.name}`,
        "aria-label": `${action} ${member.name}`, onclick: () => keyAction(action, member) },
      action[0].toUpperCase() + action.slice(1)))
    : [h("span", { class: "hint" }, stored ? "" : "in config file")];
  return h("tr", { testid: `key-row-${member.name}`, class: state },
    h("th", { scope: "row" }, member.name),
    h("td", {}, h("code", {}, member.prefix ? `${member.prefix}…` : "–")),
    h("td", {}, (member.models || []).join(", ")),
    h("td", {}, limit(member.rpm)),
    h("td", {}, limit(member.max_in_flight)),
    h("td", {}, limit(member.daily_tokens)),
    h("td", {}, limit(member.monthly_tokens)),
    h("td", { testid: `key-state-${member.name}` }, state),
    h("td", {}, `${number(total.tasks)} tasks · ${number(total.tokens)} tokens` +
      (total.cost !== null && total.cost !== undefined ? ` · ${money(total.cost)}` : "")),
    h("td", { class: "actions" }, actions));
}

async function refreshMembers() {
  const [keys, usage] = await Promise.all([api("/admin/keys"), api("/admin/usage")]);
  const totals = new Map((usage.totals || []).map((t) => [t.key, t]));
  $("keys-body").replaceChildren(...keys.data.map((m) => memberRow(m, totals)));
  drawChart(usage);
}

const COLOURS = ["#2f6fde", "#e4572e", "#29a36a", "#a05eb5", "#f2a541", "#17a2b8", "#c2185b",
  "#6c757d"];

// Tokens per member per day as stacked bars, drawn by hand (no chart library).
function drawChart(usage) {
  const days = [];
  for (let t = Date.parse(`${usage.from}T00:00:00Z`); t <= Date.parse(`${usage.to}T00:00:00Z`);
    t += 86400000) days.push(new Date(t).toISOString().slice(0, 10));
  const members = [...new Set(usage.data.map((row) => row.key))].sort();
  const byDay = new Map(days.map((d) => [d, new Map()]));
  for (const row of usage.data) {
    const day = byDay.get(row.day);
    if (day) day.set(row.key, (day.get(row.key) || 0) + row.tokens);
  }
  const totals = days.map((d) => [...byDay.get(d).values()].reduce((a, b) => a + b, 0));
  const top = 2 * Math.ceil(Math.max(1, ...totals) / 2);  // even: the middle line is whole
  const width = 760, height = 220, left = 56, bottom = 28, plot = height - bottom - 10;
  const step = (width - left - 8) / days.length;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Tokens per member per day" });
  for (const frac of members.length ? [0, 0.5, 1] : [0]) {  // no usage: just the baseline
    const y = 10 + plot * (1 - frac);
    svg.append(s("line", { x1: left, x2: width - 4, y1: y, y2: y, class: "grid" }),
      s("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" },
        number(Math.round(top * frac))));
  }
  days.forEach((day, i) => {
    let y = 10 + plot;
    members.forEach((member, m) => {
      const tokens = byDay.get(day).get(member) || 0;
      if (!tokens) return;
      const bar = (tokens / top) * plot;
      y -= bar;
      const rect = s("rect", { x: left + i * step + 1, y, width: Math.max(step - 2, 1),
        height: Math.max(bar, 1), fill: COLOURS[m % COLOURS.length] });
      rect.append(s("title", {}, `${member} · ${day}: ${number(tokens)} tokens`));
      svg.append(rect);
    });
    if (i % Math.ceil(days.length / 6) === 0 || i === days.length - 1) {
      svg.append(s("text", { x: left + i * step + step / 2, y: height - 8,
        "text-anchor": "middle", class: "axis" }, day.slice(5)));
    }
  });
  const legend = h("ul", { class: "legend" }, members.map((member, m) =>
    h("li", {}, h("span", { class: "swatch", style: null, "data-colour": m % COLOURS.length }),
      member)));
  legend.querySelectorAll(".swatch").forEach((swatch) => {
    swatch.style.background = COLOURS[Number(swatch.dataset.colour)];
  });
  $("chart").replaceChildren(svg, members.length ? legend : h("p", { class: "hint" },
    "No usage in the last 30 days."));
}

function openPlayer(src) {
  const video = $("player-video");
  video.src = src;
  $("player").showModal();
  video.play().catch(() => {});
}

function taskRow(task) {
  const preview = task.thumbnail_url
    ? h("img", { src: task.thumbnail_url, alt: `Last frame of ${task.id}`, class: "thumb",
      testid: "task-thumbnail", loading: "lazy" })
    : h("span", { class: "hint" }, "–");
  const cell = task.video_url && task.status === "succeeded"
    ? h("button", { type: "button", class: "thumb-button", testid: "task-play",
      "aria-label": `Play ${task.id}`, onclick: () => openPlayer(task.video_url) }, preview)
    : preview;
  return h("tr", { testid: `task-row-${task.id}` },
    h("td", {}, cell),
    h("td", {}, h("code", {}, task.id)),
    h("td", {}, task.owner),
    h("td", {}, task.model),
    h("td", {}, h("span", { class: `status ${task.status}`, testid: "task-status" }, task.status)),
    h("td", { class: "prompt" }, task.prompt ?? ""),
    h("td", {}, number(task.tokens)),
    h("td", {}, money(task.cost, task.currency)),
    h("td", {}, when(task.created_at)));
}

async function refreshTasks() {
  const tasks = await api("/admin/tasks?limit=50");
  $("tasks-body").replaceChildren(...(tasks.data.length ? tasks.data.map(taskRow)
    : [h("tr", {}, h("td", { colspan: 9, class: "hint" }, "No tasks yet."))]));
}

async function refreshCounters() {
  const [stats, usage] = await Promise.all([api("/admin/stats"),
    api(`/admin/usage?from=${todayUtc()}&to=${todayUtc()}`)]);
  $("c-in-flight").textContent = number(stats.in_flight);
  $("c-tasks").textContent = number(stats.today.tasks);
  $("c-tokens").textContent = number(stats.today.tokens);
  const costs = (usage.totals || []).map((t) => t.cost).filter((c) => typeof c === "number");
  $("c-cost").textContent = costs.length
    ? money(costs.reduce((a, b) => a + b, 0), usage.currency) : "–";
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

function startAdmin() {
  $("admin").hidden = false;
  const form = $("create-form");
  form.replaceChildren(...policyFields("create"),
    h("button", { type: "submit", testid: "create-submit" }, "Create key"));
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      const created = await api("/admin/keys", { method: "POST",
        body: policyFrom(form, { partial: false }) });
      showSecret(`Key for ${created.name}`, created.key);
      form.reset();
      $("create-details").open = false;
      notice("");
      await refreshMembers();
    } catch (error) {
      notice(error.message);
    }
  };
  every(REFRESH_MS, refreshCounters);
  every(REFRESH_MS * 2, refreshTasks);
  every(30000, refreshMembers);
}

// --- Member view ------------------------------------------------------------------------------

function budgetLine(label, used, left, allowed, format) {
  return h("li", {}, `${label}: ${format(used)} used`,
    left === null || left === undefined ? " (no limit)" : `, ${format(left)} left`);
}

function renderMe(me) {
  if (!me) {
    $("me").replaceChildren(h("h2", {}, "Your key"),
      h("p", { class: "hint" }, "This gateway does not report budgets (no /me)."));
    return;
  }
  const cur = (n) => money(n, me.currency);
  const { today, month } = me.usage;
  const left = me.remaining || {};
  $("me").replaceChildren(
    h("h2", {}, `Your key: ${me.name}`),
    h("ul", { class: "facts" },
      h("li", { testid: "me-in-flight" }, `In flight: ${number(me.in_flight)}`),
      h("li", {}, `Today (${today.day}): ${number(today.tasks)} tasks`),
      budgetLine("Tokens today", today.tokens, left.daily_tokens, null, number),
      budgetLine("Tokens this month", month.tokens, left.monthly_tokens, null, number),
      today.cost !== null ? budgetLine("Cost today", today.cost, left.daily_cost, null, cur) : null,
      month.cost !== null
        ? budgetLine("Cost this month", month.cost, left.monthly_cost, null, cur) : null,
      h("li", { class: "wide hint" }, `Models: ${(me.models || []).join(", ")}`)));
  const select = $("gen-model");
  if (select.options.length === 1) {
    for (const model of me.models || []) {
      if (model !== "*") select.append(h("option", { value: model }, model));
    }
  }
}

async function play(id, video) {
  video.src = await blobUrl(`/v1/videos/${encodeURIComponent(id)}/content`);
  video.hidden = false;
}

function myTaskRow(video) {
  const button = video.status === "completed"
    ? h("button", { type: "button", testid: "my-task-play", "aria-label": `Play ${video.id}`,
      onclick: async () => {
        try {
          openPlayer(await blobUrl(`/v1/videos/${encodeURIComponent(video.id)}/content`));
        } catch (error) {
          notice(error.message);
        }
      } }, "Play")
    : h("span", { class: "hint" }, video.status === "failed" && video.error
      ? video.error.message : `${video.progress ?? 0}%`);
  return h("tr", { testid: `my-task-${video.id}` },
    h("td", {}, h("code", {}, video.id)),
    h("td", {}, h("span", { class: `status ${video.status}` }, video.status)),
    h("td", { class: "prompt" }, video.prompt ?? ""),
    h("td", {}, video.size ?? "–"),
    h("td", {}, video.seconds ?? "–"),
    h("td", {}, when(video.created_at)),
    h("td", {}, button));
}

async function refreshMine() {
  const list = await api("/v1/videos?limit=20&order=desc");
  $("my-tasks-body").replaceChildren(...(list.data.length ? list.data.map(myTaskRow)
    : [h("tr", {}, h("td", { colspan: 7, class: "hint" }, "No videos yet."))]));
}

async function refreshMe() {
  try {
    renderMe(await api("/me"));
  } catch (error) {
    if (error.status !== 404) throw error;
    renderMe(null);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(id) {
  const status = $("gen-status"), progress = $("gen-progress");
  for (;;) {
    if (!key) return;
    const video = await api(`/v1/videos/${encodeURIComponent(id)}`);
    status.textContent = video.status;
    status.className = `status ${video.status}`;
    progress.value = video.progress ?? 0;
    if (video.status === "completed") break;
    if (video.status === "failed") {
      notice(video.error ? video.error.message : "The video failed.");
      return;
    }
    await sleep(1000);
  }
  progress.value = 100;
  const thumbnail = $("gen-thumbnail");
  try {
    thumbnail.src = await blobUrl(`/v1/videos/${encodeURIComponent(id)}/content?variant=thumbnail`);
    thumbnail.hidden = false;
  } catch {
    thumbnail.hidden = true; // no last frame kept: the video alone
  }
  await play(id, $("gen-video"));
  refreshMine().catch(() => {});
  refreshMe().catch(() => {});
}

function startMember(me) {
  $("member").hidden = false;
  renderMe(me);
  const form = $("generate-form");
  form.onsubmit = async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const image = data.get("input_reference");
    if (!(image instanceof File) || !image.size) data.delete("input_reference");
    if (!data.get("model")) data.delete("model");
    const submit = $("gen-submit");
    submit.disabled = true;
    try {
      const video = await api("/v1/videos", { method: "POST", body: data });
      notice("");
      $("generation").hidden = false;
      $("gen-id").textContent = video.id;
      $("gen-thumbnail").hidden = true;
      $("gen-video").hidden = true;
      $("gen-video").removeAttribute("src");
      refreshMine().catch(() => {});
      await follow(video.id);
    } catch (error) {
      notice(error.message);
    } finally {
      submit.disabled = false;
    }
  };
  every(REFRESH_MS * 2, refreshMine);
  every(REFRESH_MS * 2, refreshMe);
}

// --- Start ------------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("signin-key").value.trim();
  if (value) signIn(value);
});
$("signout").addEventListener("click", signOut);
$("secret-copy").addEventListener("click", () =>
  navigator.clipboard?.writeText($("secret-value").textContent).catch(() => {}));
$("secret-close").addEventListener("click", () => {
  $("secret-box").hidden = true;
  $("secret-value").textContent = "";
});
$("player-close").addEventListener("click", () => $("player").close());
$("player").addEventListener("close", () => $("player-video").pause());
if (key) signIn(key);
