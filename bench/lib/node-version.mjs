// Imported first by run.mjs, so that it exits with a clear message before wrangler or miniflare load.
if (Number(process.versions.node.split(".")[0]) < 22) {
  console.error(`bench: wrangler and miniflare need Node >= 22, this is ${process.version}. Use \`npm run bench\`, which runs the project's Node 24.`);
  process.exit(1);
}
