// Opens a run report or a study report from disk in Debian's Chromium
// (headless, software WebGL) and records what a reader would see, for
// tests/plugins/viz/report_test.cpp to judge: console errors and uncaught
// exceptions, whether the slice viewer (if the page has one) started,
// screenshots of its canvas before and after scrolling over a slice and of
// the whole page, the page's links and its inline SVG pictures.
// Usage: node check_report.mjs REPORT.html OUT_DIR   (prints one JSON object)
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [reportPath, outDir] = process.argv.slice(2);
if (!reportPath || !outDir) {
  console.error('usage: node check_report.mjs REPORT.html OUT_DIR');
  process.exit(2);
}
const result = { console_errors: [], page_errors: [], failed_requests: [], viewer_present: false, viewer_ready: false,
  viewer_error: null };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (message) => {
    if (message.type() === 'error') result.console_errors.push(message.text());
  });
  page.on('pageerror', (error) => result.page_errors.push(String(error)));
  page.on('requestfailed', (request) => result.failed_requests.push(request.url().slice(0, 200)));
  await page.goto(pathToFileURL(reportPath).href, { waitUntil: 'load', timeout: 120000 });
  result.viewer_present = (await page.locator('#viewer-canvas').count()) > 0;
  if (result.viewer_present) {
    try {
      await page.waitForFunction(() => window.fusionflowViewer && (window.fusionflowViewer.ready || window.fusionflowViewer.error),
        null, { timeout: 120000 });
    } catch (error) {
      result.viewer_error = 'the viewer did not start within 120 s';
    }
  }
  const state = await page.evaluate(() => window.fusionflowViewer
    ? { ready: window.fusionflowViewer.ready, error: window.fusionflowViewer.error, volumes: window.fusionflowViewer.volumes }
    : null);
  if (state) {
    result.viewer_ready = state.ready;
    result.viewer_error = result.viewer_error || state.error;
    result.viewer_volumes = state.volumes;
  }
  const canvas = page.locator('#viewer-canvas');
  if (result.viewer_ready) {
    await canvas.scrollIntoViewIfNeeded();
    await page.waitForTimeout(500);
    await canvas.screenshot({ path: join(outDir, 'viewer_before.png') });
    // Scroll over the first (left) panel: the slice it shows moves.
    const box = await canvas.boundingBox();
    await page.mouse.move(box.x + box.width * 0.15, box.y + box.height * 0.3);
    for (let i = 0; i < 12; ++i) {
      await page.mouse.wheel(0, 120);
      await page.waitForTimeout(50);
    }
    await page.waitForTimeout(500);
    await canvas.screenshot({ path: join(outDir, 'viewer_after.png') });
  }
  await page.screenshot({ path: join(outDir, 'page.png'), fullPage: false });
  result.title = await page.title();
  result.links = await page.evaluate(() => Array.from(document.querySelectorAll('a[href]')).map(
    (link) => new URL(link.getAttribute('href'), document.baseURI).href));
  result.svgs = await page.evaluate(() => Array.from(document.querySelectorAll('svg')).map((svg) => {
    const box = svg.getBoundingClientRect();
    return { class: svg.getAttribute('class'), width: box.width, height: box.height,
      circles: svg.querySelectorAll('circle').length };
  }));
  result.images = await page.evaluate(() => Array.from(document.images).map((image) => ({
    alt: image.alt, width: image.naturalWidth, height: image.naturalHeight, complete: image.complete })));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
