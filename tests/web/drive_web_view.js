// drive_web_view.js -- drives the reloc web live view in Debian's headless Chromium through playwright-core,
// as tests/web/test_web_view.py asks: node drive_web_view.js URL OUTDIR BROWSERS PARTICLE_INDEX CLICK_AT
// Opens BROWSERS pages on URL, waits until each shows a new camera frame, saves screenshots into OUTDIR,
// clicks "go to" in row PARTICLE_INDEX (0-based) of the first one and waits for the move; then clicks the
// image on a particle of the simulated sample (SAMPLE_JSON: [[x, y], ...] stage um, the ground truth) 15 to
// 60 um from the beam, placed by the simulator's convention (pixel = beam + (point - stage) / pixel size, beam
// at the image centre), and waits for that move. Prints one JSON line with what it saw.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, outdir, browsersText, particleText, sampleFile] = process.argv.slice(2);

async function frameId(page) {
  return Number(await page.getAttribute("#live", "data-frame"));
}

async function waitForNewFrame(page, after) {
  await page.waitForFunction((n) => Number(document.getElementById("live").dataset.frame || 0) > n, after,
                             { timeout: 30000 });
  return frameId(page);
}

async function waitForMoveDone(page) {
  // The reply to POST /move comes when the motors are done: "at X, Y um" in green, or the reason in red.
  await page.waitForFunction(() => {
    const m = document.getElementById("message");
    return m.className === "ok" || m.className === "bad";
  }, null, { timeout: 60000 });
  const message = await page.textContent("#message");
  if (await page.getAttribute("#message", "class") !== "ok") throw new Error("move failed: " + message);
  // The page follows the stage: wait until it reports the motors stopped, then for frames taken there.
  await page.waitForFunction(() => document.getElementById("moving").textContent === "", null,
                             { timeout: 30000 });
  await waitForNewFrame(page, await frameId(page) + 1);
  return message;
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "reloc-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 760 },
  });
  const seen = { frames: [], particles: 0 };
  try {
    // Several browsers watch at once: one persistent context plus independent pages with their own streams.
    const pages = [];
    for (let i = 0; i < Number(browsersText); i++) {
      const page = i === 0 && context.pages().length ? context.pages()[0] : await context.newPage();
      await page.goto(url);
      pages.push(page);
    }
    for (const page of pages) {
      const first = await waitForNewFrame(page, 0);
      const second = await waitForNewFrame(page, first);
      seen.frames.push([first, second]);
    }
    const page = pages[0];
    await page.waitForSelector("#particles button.goto:not([disabled])", { timeout: 15000 });
    seen.particles = Number(await page.textContent("#particle-count"));
    await page.screenshot({ path: path.join(outdir, "web-view-before.png") });
    await page.evaluate(() => { const m = document.getElementById("message"); m.textContent = ""; m.className = ""; });
    await page.locator("#particles button.goto").nth(Number(particleText)).click();
    seen.message = await waitForMoveDone(page);
    seen.stage_text = await page.textContent("#stage");
    await page.screenshot({ path: path.join(outdir, "web-view.png") });

    // Click-to-move onto a particle of the sample.
    const meta = await page.evaluate("frame");
    const sample = JSON.parse(fs.readFileSync(sampleFile, "utf8"));
    const near = sample.filter(([x, y]) => {
      const d = Math.hypot(x - meta.stage.x, y - meta.stage.y);
      return d > 15 && d < 60;
    });
    const [px, py] = near[0];
    const box = await page.locator("#overlay").boundingBox();
    const scale = box.width / meta.width;
    const u = (meta.width - 1) / 2 + (px - meta.stage.x) / meta.pixel_size;
    const v = (meta.height - 1) / 2 + (py - meta.stage.y) / meta.pixel_size;
    await page.evaluate(() => { const m = document.getElementById("message"); m.textContent = ""; m.className = ""; });
    await page.mouse.click(box.x + (u + 0.5) * scale, box.y + (v + 0.5) * scale);   // the pixel's centre
    seen.clicked_particle = [px, py];
    seen.click_message = await waitForMoveDone(page);
    await page.screenshot({ path: path.join(outdir, "web-view-click.png") });
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(seen));
}

main().catch((err) => { console.error(err); process.exit(1); });
