// node serve-bare.mjs CONFIG STATE HOST:PORT
//
// Runs the Worker of CONFIG (a wrangler.toml, with the .dev.vars beside it) on one
// local workerd through Miniflare's API, persisting under STATE/data exactly where
// `wrangler dev --persist-to STATE/data` does, so that either runner reads the other's
// state. It is the fair runner of the benchmarks: the same workerd, the same Durable
// Object and KV emulation and the same options wrangler derives from CONFIG
// (`unstable_getMiniflareWorkerOptions`), without what `wrangler dev` adds around them
// (a second workerd as a proxy, an inspector session that copies every runtime event
// to Node.js, a file watcher) or Miniflare's entry worker. A TypeScript entry (the old worker) is bundled with
// esbuild first, as wrangler bundles it. SIGTERM or SIGINT disposes of workerd, then
// exits 0. Offline: nothing here reaches the network.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare } from "miniflare";
import wrangler from "wrangler";

const [config, state, listen] = process.argv.slice(2);
if (!config || !state || !listen) {
  console.error("usage: node serve-bare.mjs CONFIG STATE HOST:PORT");
  process.exit(2);
}
const split = listen.lastIndexOf(":");
const host = listen.slice(0, split);
const port = Number(listen.slice(split + 1));

const { workerOptions, main } = wrangler.unstable_getMiniflareWorkerOptions(config);
const { name } = wrangler.unstable_readConfig({ config });
const scriptPath = main.endsWith(".ts") ? await bundled(main) : main;

const mf = new Miniflare({
  ...workerOptions,
  name,
  modules: true,
  // The entry may import from above its folder (worker-build's shim imports ../index.js).
  modulesRoot: path.parse(scriptPath).root,
  scriptPath,
  // worker-build's output is ES modules named .js.
  modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...workerOptions.modulesRules],
  // The placeholder `request.cf`, as wrangler uses with CLOUDFLARE_CF_FETCH_ENABLED=false.
  cf: false,
  // The Worker listens on HOST:PORT itself, as workerd serves a Worker configured
  // with a socket of its own: no Miniflare entry worker (which copies each request
  // and serialises a `cf` object into it) stands in front of it. Miniflare's own
  // entry listens on a free loopback port, unused.
  unsafeDirectSockets: [{ host, port }],
  host: "127.0.0.1",
  port: 0,
  defaultPersistRoot: path.join(state, "data", "v3"),
  log: new Log(process.env.ORDERGATE_EDGE_LOG === "debug" ? LogLevel.DEBUG : LogLevel.WARN),
});
await mf.ready;
console.error(`serve-bare: ${name} on http://${listen}/`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await mf.dispose().catch(() => {});
    process.exit(0);
  });
}

/** The TypeScript entry as one ES module under STATE/bundle. */
async function bundled(entry) {
  const outdir = path.join(state, "bundle");
  mkdirSync(outdir, { recursive: true });
  const outfile = path.join(outdir, "worker.mjs");
  await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    target: "es2022",
    outfile,
    logLevel: "error",
  });
  return outfile;
}
