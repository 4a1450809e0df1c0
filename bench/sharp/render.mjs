// sharp, the Node peer: imgpipe's job with sharp, run by bench/run.py (same protocol as
// bench/engines/worker.py).
//
//   node bench/sharp/render.mjs VARIANT LISTFILE [--out DIR]
//
// VARIANT
//   identical  the shared settings: rotate() (EXIF), decode once with shrink-on-load to the
//              1600 px size (fit inside, withoutEnlargement), 800 from it and 256 from that
//              (raw pixels, no second decode), Lanczos3 (sharp's default kernel), sRGB, no
//              metadata (sharp's default); jpeg({quality: 82, mozjpeg: false}) (Huffman
//              optimisation and 4:2:0 are sharp's defaults), webp({quality: 80, effort: 4})
//   clone      the same settings, the pattern sharp's docs show for several outputs: one
//              input, clone() per size, so each size decodes (with shrink-on-load) again
//   defaults   sharp's own defaults where they differ: jpeg() is quality 80; webp() as above
//
// Prints "ready" after an untimed warm-up, waits for a line on stdin, renders every file,
// then prints one JSON line: seconds, per-image ms, peak RSS, output bytes, output sizes.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import sharp from "sharp";

const SIZES = [["large", 1600], ["medium", 800], ["thumb", 256]];
const JPEG_QUALITY = 82;
const WEBP_QUALITY = 80;
const WEBP_EFFORT = 4;

sharp.cache(false);
sharp.concurrency(Number(process.env.VIPS_CONCURRENCY || 1));

const [variant, listFile, ...rest] = process.argv.slice(2);
const outDir = rest[0] === "--out" ? rest[1] : null;

function encoders(pipeline) {
  if (variant === "defaults") {
    return [["jpeg", "jpg", pipeline.clone().jpeg()], ["webp", "webp", pipeline.clone().webp()]];
  }
  return [
    ["jpeg", "jpg", pipeline.clone().jpeg({ quality: JPEG_QUALITY, mozjpeg: false })],
    ["webp", "webp", pipeline.clone().webp({ quality: WEBP_QUALITY, effort: WEBP_EFFORT })],
  ];
}

async function encodeAll(name, pipeline, outputs) {
  for (const [format, ext, encoder] of encoders(pipeline)) {
    const { data, info } = await encoder.toBuffer({ resolveWithObject: true });
    outputs.push({ name, format, ext, width: info.width, height: info.height, data });
  }
}

async function renderCascade(input) {
  const outputs = [];
  let raw = null;
  for (const [name, box] of SIZES) {
    const source = raw
      ? sharp(raw.data, { raw: raw.info })
      : sharp(input, { failOn: "error" }).rotate();
    const resized = source.resize(box, box, { fit: "inside", withoutEnlargement: true });
    const { data, info } = await resized.raw().toBuffer({ resolveWithObject: true });
    raw = { data, info: { width: info.width, height: info.height, channels: info.channels } };
    await encodeAll(name, sharp(raw.data, { raw: raw.info }), outputs);
  }
  return outputs;
}

async function renderClone(input) {
  const outputs = [];
  const base = sharp(input, { failOn: "error" }).rotate();
  for (const [name, box] of SIZES) {
    await encodeAll(name, base.clone().resize(box, box, { fit: "inside", withoutEnlargement: true }), outputs);
  }
  return outputs;
}

const render = variant === "clone" ? renderClone : renderCascade;

// VmHWM, not resourceUsage().maxRSS: Linux carries ru_maxrss across exec.
function statusKb(field) {
  const line = fs.readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
  return line ? Number(line.split(/\s+/)[1]) : 0;
}
const baselineKb = statusKb("VmRSS");

async function main() {
  const files = fs.readFileSync(listFile, "utf8").split("\n").filter(Boolean);
  await render(fs.readFileSync(files[0]));
  process.stdout.write("ready\n");
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once("line", resolve));
  lines.close();
  const perImage = [];
  const totals = {};
  const sizes = {};
  const kept = [];
  const started = process.hrtime.bigint();
  for (const file of files) {
    const t0 = process.hrtime.bigint();
    const outputs = await render(fs.readFileSync(file));
    perImage.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const stem = path.basename(file, path.extname(file));
    sizes[stem] = {};
    for (const o of outputs) {
      const key = `${o.name}.${o.ext}`;
      totals[key] = (totals[key] || 0) + o.data.length;
      sizes[stem][o.name] = [o.width, o.height];
    }
    if (outDir) kept.push([stem, outputs]);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  for (const [stem, outputs] of kept) {
    fs.mkdirSync(path.join(outDir, stem), { recursive: true });
    for (const o of outputs) fs.writeFileSync(path.join(outDir, stem, `${o.name}.${o.ext}`), o.data);
  }
  const report = {
    engine: `sharp-${variant}`,
    seconds,
    per_image_ms: perImage,
    peak_rss_kb: statusKb("VmHWM"),
    baseline_rss_kb: baselineKb,
    bytes: totals,
    sizes,
  };
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
