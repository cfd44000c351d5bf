// Bundles src/main.js (the portal app and the parts of viem it uses) into one file the node serves at
// /portal/portal.js. Run by scripts/install.sh; `npm run build` by hand.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outfile = path.join(here, "..", "alignment_node", "api", "portal", "portal.js");

await esbuild.build({
  entryPoints: [path.join(here, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  outfile,
  logLevel: "warning",
});
console.log(`built ${path.relative(process.cwd(), outfile)}`);
