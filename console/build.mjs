// Builds the console into dist/ (committed, embedded in the gateway by src/api/console.rs):
// index.html, app.js (src/main.ts bundled with the typed client), app.css, and a gzip of each.
//
//   node build.mjs           write dist/
//   node build.mjs --check   build in memory and fail when dist/ differs (scripts/console.sh)
//
// The gzip files are compared by their content (what a browser unpacks), not byte for byte:
// another zlib may pack the same bytes differently, and that is no difference that matters.
import { readFileSync, writeFileSync, readdirSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, gunzipSync, constants } from "node:zlib";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const check = process.argv.includes("--check");

// The typed client (../clients/typescript/src) imports openapi-fetch; take it from this
// package's node_modules (pinned in this lockfile at the client's version), so the bundle never
// depends on whether the client's own node_modules happens to be installed.
const ownPackages = {
  name: "own-packages",
  setup(build) {
    build.onResolve({ filter: /^openapi-fetch$/ }, (args) => ({ path: fileURLToPath(import.meta.resolve(args.path)) }));
  },
};

async function build() {
  const result = await esbuild.build({
    entryPoints: [join(here, "src/main.ts")],
    outfile: join(dist, "app.js"),
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    minify: true,
    legalComments: "none",
    charset: "utf8",
    write: false,
    logLevel: "warning",
    // Paths in the output would differ between checkouts; nothing else in it does.
    sourcemap: false,
    plugins: [ownPackages],
  });
  const files = new Map();
  for (const file of result.outputFiles) {
    const name = file.path.slice(dist.length + 1);
    files.set(name, Buffer.from(file.contents));
  }
  files.set("index.html", readFileSync(join(here, "src/index.html")));
  for (const [name, contents] of [...files]) {
    files.set(`${name}.gz`, gzipSync(contents, { level: constants.Z_BEST_COMPRESSION }));
  }
  return files;
}

const files = await build();
const expected = ["app.css", "app.css.gz", "app.js", "app.js.gz", "index.html", "index.html.gz"];
const built = [...files.keys()].sort();
if (JSON.stringify(built) !== JSON.stringify(expected)) {
  // src/api/console.rs embeds exactly these; a new file must be added there too.
  console.error(`console build: wrote ${built.join(", ")}; src/api/console.rs embeds ${expected.join(", ")}`);
  process.exit(1);
}

if (!check) {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist);
  for (const [name, contents] of files) writeFileSync(join(dist, name), contents);
  console.log(`console build: ${built.map((n) => `${n} ${files.get(n).length} B`).join(", ")}`);
} else {
  const stale = [];
  const present = existsSync(dist) ? readdirSync(dist).sort() : [];
  if (JSON.stringify(present) !== JSON.stringify(expected)) stale.push(`files ${present.join(", ") || "(none)"}`);
  for (const name of expected) {
    const path = join(dist, name);
    if (!existsSync(path)) continue;
    const committed = readFileSync(path);
    const same = name.endsWith(".gz")
      ? gunzipSync(committed).equals(gunzipSync(files.get(name)))
      : committed.equals(files.get(name));
    if (!same) stale.push(name);
  }
  if (stale.length > 0) {
    console.error(`console build: console/dist differs from a fresh build (${stale.join(", ")}): run \`npm --prefix console run build\` and commit console/dist`);
    process.exit(1);
  }
  console.log("console build: console/dist matches a fresh build");
}
