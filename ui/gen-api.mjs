// Generates ui/src/api.gen.ts, the TypeScript types of the control API, from its OpenAPI
// document (printed by `cargo run --example openapi`, the same document /api/openapi.json
// serves). Run by `npm run gen:api`; CI runs it too and fails if the committed file differs.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

const root = fileURLToPath(new URL("..", import.meta.url));
const document = JSON.parse(
  execFileSync("cargo", ["run", "--quiet", "--locked", "--example", "openapi"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  }),
);
const ast = await openapiTS(document);
const header =
  COMMENT_HEADER +
  "// From the control API's OpenAPI document (src/api/): regenerate with `npm run gen:api`.\n\n";
const out = fileURLToPath(new URL("src/api.gen.ts", import.meta.url));
writeFileSync(out, header + astToString(ast));
console.log(`wrote ${out}`);
