// The audit log viewer in a real browser (Debian's chromium, headless, driven by
// playwright-core) against the demo on a random port:
//   node viewer.test.mjs http://127.0.0.1:PORT ARTIFACTS_DIR
// Signs in, applies each filter and preset, expands a row, follows a request id, loads more,
// exports CSV and compares it with the table, turns on the live tail, sees a member refused
// and hostile values rendered inertly. Screenshots of the main states go to ARTIFACTS_DIR.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [base, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const ui = `${base}/api/audit/ui`;
let step = "start";

function check(cond, what) {
  if (!cond) throw new Error(`${step}: ${what}`);
}

async function call(method, path, token, body) {
  const resp = await fetch(base + path, {
    method,
    headers: Object.assign(
      { "content-type": "application/json" },
      token ? { authorization: `Bearer ${token}` } : {},
    ),
    body: body ? JSON.stringify(body) : undefined,
  });
  return resp;
}

async function login(email, password) {
  const resp = await call("POST", "/auth/login", null, { email, password });
  return (await resp.json()).token;
}

async function waitForTotal(token, query, n) {
  for (let i = 0; i < 200; i++) {
    const resp = await call("GET", `/api/audit/logs?${query}`, token);
    const body = await resp.json();
    if (body.summary && body.summary.totalEvents >= n) return body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${step}: ${query} never reached ${n}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
// Answers the test provokes (a member's 403) show as failed loads; anything else is a fault.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
    problems.push(`console: ${m.text()}`);
  }
});
page.on("dialog", (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });

const rows = () => page.locator("#rows > tr:not(.details)");
const summary = () => page.locator("#summary").textContent();

try {
  // Data: enough events for two pages, and hostile values.
  step = "seed";
  const admin = await login("admin@acme.test", "admin-password");
  const run = Date.now().toString(36);
  for (let i = 0; i < 60; i++) {
    const r = await call("POST", "/v1/indexes", admin, { name: `idx-${run}-${i}` });
    check(r.status === 201, `index ${i}: ${r.status}`);
  }
  const hostile = [
    `<img src=x onerror="window.__xss=1">`,
    `</script><script>window.__xss=2</script>`,
    `javascript:window.__xss=3`,
    `\u202Egnp.exe`,
  ];
  for (const name of hostile) {
    await call("POST", "/v1/indexes", admin, { name });
  }
  await waitForTotal(admin, "eventType=data.index.create", 64);

  step = "headers";
  const resp = await fetch(ui);
  check(resp.status === 200, `ui ${resp.status}`);
  const csp = resp.headers.get("content-security-policy") || "";
  check(csp.includes("script-src 'self'") && !csp.includes("unsafe"), `csp ${csp}`);
  check(resp.headers.get("x-content-type-options") === "nosniff", "nosniff");

  step = "member is refused";
  await page.goto(ui);
  await page.getByLabel("E-mail", { exact: true }).fill("member@acme.test");
  await page.getByLabel("Password", { exact: true }).fill("member-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#message").filter({ hasText: "may not read" }).waitFor();
  check((await rows().count()) === 0, "a member sees no rows");
  await page.screenshot({ path: join(artifacts, "refused.png") });
  await page.getByRole("button", { name: "Sign out" }).click();

  step = "admin signs in";
  await page.getByLabel("E-mail", { exact: true }).fill("admin@acme.test");
  await page.getByLabel("Password", { exact: true }).fill("admin-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#summary").filter({ hasText: /[1-9]\d* events/ }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#rows > tr").length > 0);
  check(!page.url().includes("token"), "no token in the URL");
  check((await rows().count()) === 50, `first page ${await rows().count()}`);
  await page.screenshot({ path: join(artifacts, "viewer.png") });

  step = "load more";
  await page.getByRole("button", { name: "Load more" }).click();
  await page.waitForFunction(() => document.querySelectorAll("#rows > tr:not(.details)").length > 50);

  step = "presets";
  for (const preset of ["24h", "7d", "90d", "30d"]) {
    await page.getByLabel("Date range").selectOption(preset);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(
      (p) => p === "30d" ? !location.search.includes("range") : location.search.includes(`range=${p}`),
      preset,
    );
    await page.locator("#summary").filter({ hasText: "events" }).waitFor();
    check((await rows().count()) > 0, `${preset} shows events`);
  }
  await page.getByLabel("Date range").selectOption("custom");
  check(await page.getByLabel("Start").isVisible(), "custom range shows its fields");
  await page.getByLabel("Start").fill("2020-01-01T00:00");
  await page.getByLabel("End").fill("2020-01-02T00:00");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.locator("#summary").filter({ hasText: "0 events" }).waitFor();
  check(await page.getByRole("button", { name: "Export CSV" }).isDisabled(), "export disabled when empty");
  await page.getByRole("button", { name: "Reset" }).click();
  await page.locator("#summary").filter({ hasText: /[1-9]\d* events/ }).waitFor();

  step = "filters";
  const applyAndCheck = async (label, value, test) => {
    const field = page.getByLabel(label, { exact: true });
    if ((await field.evaluate((e) => e.tagName)) === "SELECT") await field.selectOption(value);
    else await field.fill(value);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForFunction(() => !document.querySelector("#summary").textContent.startsWith("…"));
    await page.waitForTimeout(300);
    const texts = await rows().evaluateAll((trs) => trs.map((tr) =>
      tr.textContent + " " + [...tr.querySelectorAll("[title]")].map((e) => e.title).join(" ")));
    check(texts.length > 0, `${label}=${value} shows events`);
    for (const t of texts) check(test(t), `${label}=${value}: row ${t}`);
    if ((await field.evaluate((e) => e.tagName)) === "SELECT") await field.selectOption("");
    else await field.fill("");
  };
  await applyAndCheck("Action type", "data.index.create", (t) => t.includes("data.index.create"));
  await applyAndCheck("Category", "authentication", (t) => t.includes("auth."));
  await applyAndCheck("Severity", "info", () => true);
  await applyAndCheck("Result", "success", () => true);
  await applyAndCheck("Resource type", "index", (t) => t.includes("index"));
  await applyAndCheck("User (id or e-mail)", "user-acme-admin", (t) => t.includes("user-acme-"));
  await applyAndCheck("Search", `idx-${run}-1`, (t) => t.includes(`idx-${run}-1`));
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => !location.search.includes("q="));

  step = "filters live in the URL";
  await page.getByLabel("Action type").selectOption("data.index.create");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => location.search.includes("eventType=data.index.create"));
  await page.reload();
  await page.locator("#summary").filter({ hasText: "events" }).waitFor();
  check((await page.getByLabel("Action type").inputValue()) === "data.index.create", "filter restored");

  step = "export matches the table";
  await page.getByLabel("Search").fill(`idx-${run}-`);
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.locator("#summary").filter({ hasText: "60 events" }).waitFor();
  while (await page.getByRole("button", { name: "Load more" }).isVisible()) {
    await page.getByRole("button", { name: "Load more" }).click();
    await page.waitForTimeout(200);
  }
  const tableTargets = (await rows().evaluateAll((trs) =>
    trs.map((tr) => tr.children[3].querySelector(".mono").title))).sort();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  const lines = csv.trim().split(/\r\n/);
  check(lines.length === 61, `csv has ${lines.length - 1} rows`);
  for (const t of tableTargets) check(csv.includes(t), `csv lacks ${t}`);
  check(tableTargets.length === 60, `table has ${tableTargets.length} rows`);

  step = "expand and follow the request id";
  await page.getByRole("button", { name: "Reset" }).click();
  await page.locator("#summary").filter({ hasText: /[1-9]\d* events/ }).waitFor();
  const first = rows().first();
  await first.getByRole("button").click();
  const details = page.locator("tr.details").first();
  await details.waitFor();
  check((await details.locator("pre").textContent()).includes('"eventType"'), "full JSON shown");
  check((await first.getByRole("button").getAttribute("aria-expanded")) === "true", "aria-expanded");
  await page.screenshot({ path: join(artifacts, "expanded.png") });
  const requestId = await details.locator("dd button.link").first().textContent();
  await details.locator("dd button.link").first().click();
  await page.waitForFunction((id) => location.search.includes(`requestId=${id}`), requestId);
  await page.waitForTimeout(300);
  const ids = await rows().count();
  check(ids >= 1, "the request's events are shown");
  await page.getByRole("button", { name: "Reset" }).click();
  await page.locator("#summary").filter({ hasText: /[1-9]\d* events/ }).waitFor();

  step = "live tail";
  await page.getByLabel("Live tail").check();
  await page.locator("#live-state").filter({ hasText: "Live: on" }).waitFor();
  const liveName = `lv${run}`.slice(0, 12);
  const started = Date.now();
  await call("POST", "/v1/indexes", admin, { name: liveName });
  await page.locator("#rows > tr.fresh").filter({ hasText: liveName }).first().waitFor({ timeout: 2000 });
  check(Date.now() - started < 2000, "a new event within 2 s");
  await page.screenshot({ path: join(artifacts, "live.png") });
  await page.getByLabel("Live tail").uncheck();

  step = "hostile values are inert";
  await page.getByLabel("Search").fill("");
  await page.getByLabel("Resource type").fill("index");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForTimeout(500);
  for (const tr of await rows().all()) {
    const text = await tr.textContent();
    if (hostile.some((h) => text.includes(h.slice(0, 12)))) {
      await tr.getByRole("button").click();
    }
  }
  await page.waitForTimeout(300);
  const body = await page.locator("#rows").textContent();
  for (const h of hostile.slice(0, 3)) check(body.includes(h.slice(0, 20)), `${h} shown as text`);
  check(body.includes("[U+202E]gnp.exe") && !body.includes("\u202E"), "direction override shown, not applied");
  check((await page.locator("#rows img").count()) === 0, "no element made from an event");
  check((await page.locator("#rows script").count()) === 0, "no script made from an event");
  check((await page.evaluate(() => window.__xss)) === undefined, "no script ran");
  await page.screenshot({ path: join(artifacts, "hostile.png") });

  step = "narrow screen";
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(artifacts, "narrow.png"), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `page wider than the screen by ${overflow}px`);

  step = "keyboard";
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByLabel("Date range").focus();
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  check(focused, "Tab moves to the next labelled control");
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select")]
      .filter((e) => e.type !== "hidden" && !e.closest("[hidden]"))
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
      .map((e) => e.id));
  check(unlabelled.length === 0, `unlabelled controls ${unlabelled}`);

  check(problems.length === 0, problems.join("; "));
  console.log("viewer: all checks passed");
  await browser.close();
} catch (e) {
  await page.screenshot({ path: join(artifacts, "failure.png") }).catch(() => {});
  console.error(e.stack || String(e));
  if (problems.length) console.error(problems.join("\n"));
  await browser.close();
  process.exit(1);
}
