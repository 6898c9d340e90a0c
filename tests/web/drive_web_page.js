// drive_web_page.js -- what an operator sees on the reloc web live view in an 800 px wide Chromium window, for
// tests/web/test_web_page.py: node drive_web_page.js URL OUTDIR
// It talks with the test over stdin/stdout: it prints one JSON line per step ({"step": NAME, ...what it saw})
// and, where the test must change the IOC first, waits for a line "go" on stdin.
//   layout     the page fits 800 px (no horizontal scrolling), the lists are under the image
//   overlay    the crosshair (canvas data-beam, screen px), the scale bar (data-scale-bar "UM PX"), frame metadata
//   shows      the labelled values as shown
//   disabled   clicking the image while moves are disabled: the message and its class
//   refused    (after "go": moves enabled) a move the motors refuse: the message, its class and colour
//   click      (after "go") a click 40 screen px right of the crosshair: the verdict
//   stop       (after "go": a motor is moving) clicks STOP: the message
//   stale      (after "go": the camera stopped) the image is marked stale: the mark's text
"use strict";
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const [url, outdir] = process.argv.slice(2);
const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

function report(step, seen) { console.log(JSON.stringify({ step, ...seen })); }
async function go() { const { value } = await lines.next(); if (value !== "go") throw new Error("expected go"); }

async function verdict(page) {
  await page.waitForFunction(() => ["ok", "bad"].includes(document.getElementById("message").className), null,
                             { timeout: 30000 });
  return page.evaluate(() => {
    const m = document.getElementById("message");
    return { message: m.textContent, class: m.className, color: getComputedStyle(m).color };
  });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 800, height: 700 } });
    await page.goto(url);
    await page.waitForFunction(() => Number(document.getElementById("live").dataset.frame || 0) > 0, null,
                               { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById("shows").children.length > 0, null, { timeout: 10000 });
    await page.screenshot({ path: path.join(outdir, "web-view-800.png") });

    report("layout", await page.evaluate(() => {
      const view = document.getElementById("view").getBoundingClientRect();
      const aside = document.querySelector("aside").getBoundingClientRect();
      return { scroll_width: document.documentElement.scrollWidth, view_bottom: view.bottom, view_width: view.width,
               aside_top: aside.top, aside_right: aside.right };
    }));
    report("overlay", await page.evaluate(() => {
      const c = document.getElementById("overlay");
      return { beam: c.dataset.beam, scale_bar: c.dataset.scaleBar, frame, client_width: c.clientWidth };
    }));
    report("shows", await page.evaluate(() => {
      const dl = document.getElementById("shows"), out = {};
      for (let i = 0; i + 1 < dl.children.length; i += 2) out[dl.children[i].textContent] = dl.children[i + 1].textContent;
      return { shows: out };
    }));

    const box = await page.locator("#overlay").boundingBox();
    await page.mouse.click(box.x + box.width / 3, box.y + box.height / 3);
    report("disabled", await verdict(page));

    await go();
    await page.waitForFunction(() => document.getElementById("move-enable").textContent === "enabled", null,
                               { timeout: 10000 });
    await page.evaluate(() => { move(20000, 0); });
    report("refused", await verdict(page));

    await go();
    const [bx, by] = (await page.getAttribute("#overlay", "data-beam")).split(",").map(Number);
    await page.evaluate(() => { const m = document.getElementById("message"); m.textContent = ""; m.className = ""; });
    await page.mouse.click(box.x + bx + 40, box.y + by);
    report("click", await verdict(page));

    await go();
    await page.evaluate(() => { const m = document.getElementById("message"); m.textContent = ""; m.className = ""; });
    await page.click("#stop");
    await page.waitForFunction(() => document.getElementById("message").textContent !== "", null, { timeout: 10000 });
    report("stop", { message: await page.textContent("#message") });

    await go();
    await page.waitForFunction(() => document.getElementById("view").classList.contains("stale"), null,
                               { timeout: 20000 });
    await page.screenshot({ path: path.join(outdir, "web-view-stale.png") });
    report("stale", await page.evaluate(() => {
      const mark = document.getElementById("stale");
      return { text: mark.textContent, visible: getComputedStyle(mark).display !== "none" };
    }));
  } finally {
    await browser.close();
    input.close();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
