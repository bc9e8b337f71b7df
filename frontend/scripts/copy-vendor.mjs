// Copies the browser assets we take from npm into dist/, so that Yakuba serves every
// asset itself (the closed network has no CDN).
import { copyFileSync, mkdirSync } from "node:fs";

const vendor = "dist/yakuba/vendor";
mkdirSync(vendor, { recursive: true });
copyFileSync("node_modules/htmx.org/dist/htmx.min.js", `${vendor}/htmx.min.js`);
