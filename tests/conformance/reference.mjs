// The reference side of Drover's differential harness: replays each recording with @puppeteer/replay
// (on puppeteer-core, connected to a Chromium the Python harness launched with Drover's own flags and
// a fresh profile), each in a fresh browser context, and writes one JSON line per recording:
//   {"name", "ok", "error", "state", "pages"}
// Usage: node reference.mjs CONFIG.json   (CONFIG: {"ws", "modules", "capture", "out", "recordings": [{"name", "flow"}]})
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const require = createRequire(path.join(config.modules, "noop.js"));
const puppeteer = require("puppeteer-core");
const { createRunner, parse, PuppeteerRunnerExtension } = require("@puppeteer/replay");

const RECORDING_LIMIT_MS = 45000;

function withLimit(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function replayOne(browser, recording) {
  const context = await browser.createBrowserContext();
  const result = { name: recording.name, ok: false, error: null, state: null, pages: [] };
  try {
    const page = await context.newPage();
    const extension = new PuppeteerRunnerExtension(browser, page, { timeout: recording.flow.timeout || 5000 });
    const runner = await createRunner(parse(recording.flow), extension);
    try {
      await withLimit(runner.run(), RECORDING_LIMIT_MS, recording.name);
      result.ok = true;
    } catch (err) {
      result.error = String(err && err.message ? err.message : err).split("\n")[0];
    }
    if (!page.isClosed()) {
      try {
        result.state = await withLimit(page.evaluate(config.capture), 10000, "capture");
      } catch (err) {
        result.error = (result.error ? result.error + "; " : "") + "capture failed: " + String(err.message).split("\n")[0];
      }
    }
    result.pages = (await context.pages()).map((p) => p.url()).sort();
  } finally {
    await context.close();
  }
  return result;
}

const browser = await puppeteer.connect({ browserWSEndpoint: config.ws, defaultViewport: null });
const out = fs.openSync(config.out, "w");
try {
  for (const recording of config.recordings) {
    let result;
    try {
      result = await replayOne(browser, recording);
    } catch (err) {
      result = { name: recording.name, ok: false, error: "harness: " + String(err.message).split("\n")[0], state: null, pages: [] };
    }
    fs.writeSync(out, JSON.stringify(result) + "\n");
  }
} finally {
  fs.closeSync(out);
  await browser.disconnect();
}
