#!/usr/bin/env node
// Thin launcher: the CLI lives in the build (npm run build).
import { main } from '../dist/src/cli.js';

main(process.argv).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ollama-gateway: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
