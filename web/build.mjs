// Builds the dashboard (/) and the team view (/team/) into dist/, which the alerts service serves.
//
//   node build.mjs            production build (minified, with source maps)
//   node build.mjs --watch    rebuild on change (development)
//
// Everything the pages load comes from dist/: the bundles (Leaflet, milsymbol and our code), the
// styles, and Natural Earth's country outlines from the npm package world-atlas (TopoJSON, turned
// into shapes in the browser). No CDN, no web fonts, no tiles unless the site configures its own.
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const watch = process.argv.includes("--watch");

const options = {
  absWorkingDir: root,
  entryPoints: {
    "assets/dashboard": "src/dashboard/main.ts",
    "assets/team": "src/team/main.ts",
    "assets/dashboard-style": "src/styles/dashboard.css",
    "assets/team-style": "src/styles/team.css",
  },
  outdir: dist,
  bundle: true,
  format: "esm",
  target: ["es2021", "chrome100", "firefox100", "safari15"],
  minify: !watch && !process.argv.includes("--dev"),
  sourcemap: true,
  legalComments: "linked",
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "assets/[name]-[hash]",
  logLevel: "info",
};

async function copyStatic() {
  await cp(join(root, "static"), dist, { recursive: true });
  await mkdir(join(dist, "geo"), { recursive: true });
  await cp(
    join(root, "node_modules", "world-atlas", "countries-50m.json"),
    join(dist, "geo", "countries-50m.json"),
  );
  await cp(join(root, "node_modules", "world-atlas", "LICENSE"), join(dist, "geo", "LICENSE.world-atlas"));
}

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await copyStatic();
if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
  await writeFile(join(dist, "BUILT"), `${new Date().toISOString()}\n`);
}
