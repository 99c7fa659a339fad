// Compiles parsers/tlv.ksy to parsers/tlv_generated.py with the JS build of
// kaitai-struct-compiler pinned in package.json (no JVM needed).
// Usage (from the repo root): cd parsers/kaitai && npm ci && node compile.js [OUT_DIR]
// OUT_DIR defaults to parsers/; tests pass a temporary one to check the committed file is current.
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");
const compiler = require("kaitai-struct-compiler");

const parsersDir = path.resolve(__dirname, "..");
const outDir = process.argv[2] ? path.resolve(process.argv[2]) : parsersDir;
const jobs = [["tlv.ksy", "tlv_generated.py"]];

async function main() {
  for (const [source, target] of jobs) {
    const ksy = yaml.load(fs.readFileSync(path.join(parsersDir, source), "utf8"));
    const files = await compiler.compile("python", ksy, null, false);
    const names = Object.keys(files);
    if (names.length !== 1) throw new Error(`${source}: expected one output, got ${names}`);
    fs.writeFileSync(path.join(outDir, target), files[names[0]]);
    console.log(`${source} -> ${target} (kaitai-struct-compiler ${compiler.version})`);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
