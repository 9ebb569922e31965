#!/usr/bin/env node
// Speaks the native solc CLI's `--version` and `--standard-json` on top of
// solc-js, so py-solc-x, ape-solidity and Slither can use the npm compiler
// offline (no compiler download ever happens).
'use strict';
const fs = require('fs');
const path = require('path');

const projectRoot = path.resolve(__dirname, '..');
const solc = require(path.join(projectRoot, 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  // py-solc-x parses "Version: X.Y.Z+commit..." from this line.
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc-bridge: only --version and --standard-json are supported\n');
  process.exit(2);
}

// Extra roots from --base-path / --include-path / --allow-paths, as the native CLI takes them.
const roots = [process.cwd(), projectRoot, path.join(projectRoot, 'node_modules')];
for (let i = 0; i < args.length; i += 1) {
  if (['--base-path', '--include-path', '--allow-paths'].includes(args[i]) && args[i + 1]) {
    for (const p of args[i + 1].split(',')) roots.push(path.resolve(p));
  }
}

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.resolve(root, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${importPath}` };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
