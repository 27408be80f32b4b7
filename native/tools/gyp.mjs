#!/usr/bin/env node
// `npm run build:gyp`: the node-gyp build of the addon (the alternative to cmake-js), against the
// headers of the Node.js that runs this script, never downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const prefix = path.dirname(path.dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : '');
const gyp = createRequire(path.join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
const argv = [gyp, 'rebuild', `-j`, String(os.availableParallelism()), ...(nodedir ? [`--nodedir=${nodedir}`] : []), ...process.argv.slice(2)];
const r = spawnSync(process.execPath, argv, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
