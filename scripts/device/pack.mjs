#!/usr/bin/env node
// Prepares what a lent GPU machine (the device tool: a bare x86-64 machine with no network and no Node) needs to run
// the `finetune` CLI from this checkout, and keeps what travels under the tool's 64 MiB limit. docs/benchmarks.md,
// "Running the benchmarks on a lent GPU", says how the pieces fit together.
//
//   node scripts/device/pack.mjs            build .device/ and .gl/, print what will travel once the big files are parked
//   node scripts/device/pack.mjs --park     move the two big tracked files out of the checkout (before the device call)
//   node scripts/device/pack.mjs --unpark   put them back (after the call; never commit while they are parked)
//   node scripts/device/pack.mjs --size     what would travel right now, as the checkout stands; exit 1 when over
//
// .device/ (ignored; carried by the call) holds:
//   node.xz                                      this machine's Node binary (symbols stripped when `strip` exists), xz
//   finetune.mjs                                 the CLI bundled into one ESM file (esbuild), WGSL inlined as text
//   node_modules/webgpu/{index.js,package.json}  the `webgpu` package's loader, left external to the bundle
//   node_modules/webgpu/dist/linux-x64/dawn.node.xz   Dawn itself, unpacked by scripts/device/h200-speed.sh
//   lib/libstdc++.so.6.xz                        this machine's C++ runtime, used there only if the image's is too old
//                                                for dawn.node (it needs GLIBCXX_3.4.30)
//   manifest.json                                what was packed from what (Node version, git commit, sizes)
// .gl/ (ignored; carried) holds Debian's Vulkan loader (libvulkan1) and the GL vendor-neutral dispatch libraries (glvnd)
// for a machine whose image has none: NVIDIA's Vulkan driver is libGLX_nvidia.so.0, which needs glvnd's libraries to
// hand the loader its vkCreateInstance (without them: "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'
// for ICD libGLX_nvidia.so.0", then "Found no drivers"; seen on the H200 on 2026-11-30).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  realpathSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The device tool's limit on the working tree that travels (tracked, untracked-not-ignored, carried). */
export const LIMIT_BYTES = 64 * 1024 * 1024;
/** Tracked files too big to travel: moved out of the checkout for the call (--park) and back after it (--unpark). */
export const PARKED = ['public/models/mistral-nano-demo/model.safetensors', 'test/fixtures/tiny-mistral.onnx'];
/** Outside the checkout, so nothing there travels. */
export const PARK_DIR = process.env.DEVICE_PARK_DIR ?? '/work/device-parked';
/** The ignored folders the device call carries. */
export const CARRIED = ['.device', '.gl'];
/** Debian packages unpacked on the device when its image has no Vulkan loader: the loader, and glvnd for NVIDIA's driver. */
export const DEBS = ['libvulkan1', 'libglvnd0', 'libglx0', 'libgl1', 'libegl1', 'libopengl0', 'libgles2'];

const MiB = 1024 * 1024;
export const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------------------------
// Size accounting

/** Bytes under a path (files and links as they are: a link travels as a link), 0 when absent. */
export function treeBytes(path) {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += treeBytes(join(path, name));
  return total;
}

/**
 * What travels: `files` (paths relative to `root`: tracked and untracked-not-ignored) that exist, less `exclude`, plus
 * the carried paths. Returns the total, the largest entries, and whether it is within `limit`.
 */
export function travelling(root, files, { exclude = [], carried = [], limit = LIMIT_BYTES } = {}) {
  const skip = new Set(exclude);
  const entries = [];
  for (const f of files) {
    if (skip.has(f)) continue;
    const bytes = treeBytes(join(root, f));
    if (bytes > 0 || existsSync(join(root, f))) entries.push({ path: f, bytes });
  }
  for (const c of carried) entries.push({ path: `${c}/ (carried)`, bytes: treeBytes(join(root, c)) });
  const total = entries.reduce((s, e) => s + e.bytes, 0);
  const largest = [...entries].sort((a, b) => b.bytes - a.bytes).slice(0, 8);
  return { total, limit, ok: total <= limit, largest, count: entries.length };
}

/** Tracked and untracked-not-ignored files, as git lists them (what the device tool sends besides the carried paths). */
export function checkoutFiles(root = ROOT) {
  const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root });
  return [...new Set(out.toString().split('\0').filter(Boolean))];
}

function printTravelling(t, title) {
  console.log(`${title}: ${mib(t.total)} of ${mib(t.limit)} (${t.count} entries)`);
  for (const e of t.largest) console.log(`  ${mib(e.bytes).padStart(10)}  ${e.path}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Parking the big tracked files

function move(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  try {
    renameSync(from, to);
  } catch (e) {
    if (e.code !== 'EXDEV') throw e;
    copyFileSync(from, to);
    unlinkSync(from);
  }
}

/** Removes the empty folders from `dir` up to (not including) `stop`, as unparking leaves them. */
function pruneEmpty(dir, stop) {
  for (let d = dir; d.startsWith(`${stop}/`); d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
  }
}

/**
 * Moves each of `files` from `root` to `parkDir` (same relative path) when `toPark`, else back. Idempotent: a file
 * already where it should be is left alone; one present in both places is refused (nothing is overwritten), as is
 * one present in neither. Returns the lines it would print and whether every file ended where asked.
 */
export function parkFiles(root, parkDir, files, toPark) {
  const lines = [];
  let ok = true;
  for (const f of files) {
    const inTree = join(root, f);
    const parked = join(parkDir, f);
    const [from, to] = toPark ? [inTree, parked] : [parked, inTree];
    const hasFrom = existsSync(from);
    const hasTo = existsSync(to);
    if (hasFrom && hasTo) {
      lines.push(`refused: ${f} is both in ${root} and in ${parkDir}; remove one copy yourself`);
      ok = false;
    } else if (hasFrom) {
      move(from, to);
      lines.push(`moved ${from} → ${to}`);
      if (!toPark) pruneEmpty(dirname(parked), parkDir);
    } else if (hasTo) {
      lines.push(`already ${toPark ? 'parked' : 'in place'}: ${to}`);
    } else {
      lines.push(`missing: ${f} is neither in ${root} nor in ${parkDir}`);
      ok = false;
    }
  }
  return { ok, lines };
}

// ---------------------------------------------------------------------------------------------------------------
// Building .device/

/** Replaces `import.meta.url` in a project source by the URL that source has in the checkout, seen from .device/. */
export function rebaseImportMeta(source, sourcePath, bundleDir) {
  if (!source.includes('import.meta.url')) return source;
  const rel = relative(bundleDir, sourcePath).split('\\').join('/');
  return source.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`);
}

async function bundleCli(root, outDir) {
  const { build } = await import(pathToFileURL(join(root, 'node_modules', 'esbuild', 'lib', 'main.js')).href).catch(async () => import('esbuild'));
  const src = join(root, 'src') + '/';
  const plugin = {
    name: 'finetune-device',
    setup(b) {
      // `import text from './x.wgsl?raw'`: the file's text as the default export, as Vite and bin/raw-loader.mjs give it.
      b.onResolve({ filter: /\?raw$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.slice(0, -'?raw'.length)), namespace: 'raw' }));
      b.onLoad({ filter: /.*/, namespace: 'raw' }, (args) => ({ contents: readFileSync(args.path, 'utf8'), loader: 'text' }));
      // The CLI finds files next to its sources (package.json, public/tokenizer) through import.meta.url: keep those
      // URLs pointing into the checkout rather than at the bundle.
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        if (!args.path.startsWith(src)) return undefined;
        return { contents: rebaseImportMeta(readFileSync(args.path, 'utf8'), args.path, outDir), loader: 'ts' };
      });
    },
  };
  const outfile = join(outDir, 'finetune.mjs');
  const result = await build({
    stdin: {
      contents: "import { main } from './src/cli/main.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
      resolveDir: root,
      sourcefile: 'device-entry.ts',
      loader: 'ts',
    },
    bundle: true,
    outfile,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu'],
    plugins: [plugin],
    logLevel: 'warning',
    legalComments: 'none',
    banner: {
      // Bundled CommonJS (@agnai/sentencepiece-js reads require and __filename) expects these in an ES module.
      js: [
        "import { createRequire as __ftCreateRequire } from 'node:module';",
        "import { fileURLToPath as __ftFileURLToPath } from 'node:url';",
        "import { dirname as __ftDirname } from 'node:path';",
        'const require = __ftCreateRequire(import.meta.url);',
        'const __filename = __ftFileURLToPath(import.meta.url);',
        'const __dirname = __ftDirname(__filename);',
      ].join('\n'),
    },
  });
  if (result.errors.length) throw new Error(`esbuild: ${result.errors.length} errors`);
  return outfile;
}

function xz(input, output) {
  // -T0: all cores; -9e: smallest. Node's 85 MB take about two minutes on two cores.
  const data = execFileSync('xz', ['-T0', '-9e', '-c', input], { maxBuffer: 1024 * MiB });
  writeFileSync(output, data);
}

function fingerprint(path) {
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}

function readManifest(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch {
    return {};
  }
}

function hasCommand(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** node.xz: the running Node, stripped of its symbol table (the dynamic symbols Dawn links against stay), xz. */
function packNode(outDir, previous) {
  const out = join(outDir, 'node.xz');
  const fp = fingerprint(process.execPath);
  if (existsSync(out) && previous.node?.fingerprint === fp) return { ...previous.node, reused: true };
  let input = process.execPath;
  let stripped = false;
  const tmp = join(outDir, 'node.tmp');
  if (hasCommand('strip')) {
    execFileSync('strip', ['-o', tmp, process.execPath]);
    // A stripped binary that does not run is worse than a bigger one.
    const v = execFileSync(tmp, ['-e', 'process.stdout.write(process.version)']).toString();
    if (v === process.version) {
      input = tmp;
      stripped = true;
    }
  }
  console.log(`compressing ${input} (${mib(statSync(input).size)}) with xz -9e; about two minutes…`);
  xz(input, out);
  rmSync(tmp, { force: true });
  return { fingerprint: fp, version: process.version, stripped, bytes: statSync(out).size };
}

/** The `webgpu` package's loader and its Linux x64 Dawn (xz), laid out as node_modules/webgpu for the bundle. */
function packWebgpu(root, outDir, previous) {
  const pkg = join(root, 'node_modules', 'webgpu');
  const dest = join(outDir, 'node_modules', 'webgpu');
  mkdirSync(join(dest, 'dist', 'linux-x64'), { recursive: true });
  for (const f of ['index.js', 'package.json']) copyFileSync(join(pkg, f), join(dest, f));
  const dawn = join(pkg, 'dist', 'linux-x64', 'dawn.node');
  const out = join(dest, 'dist', 'linux-x64', 'dawn.node.xz');
  const fp = fingerprint(dawn);
  if (existsSync(out) && previous.dawn?.fingerprint === fp) return { ...previous.dawn, reused: true };
  console.log(`compressing ${relative(root, dawn)} (${mib(statSync(dawn).size)}) with xz -9e…`);
  xz(dawn, out);
  const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  return { fingerprint: fp, version, bytes: statSync(out).size, unpackedBytes: statSync(dawn).size };
}

/** libstdc++ as dawn.node loads it here, for a device image whose own is older (the run script decides). */
function packLibstdcxx(root, outDir, previous) {
  const dawn = join(root, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node');
  let lib = '';
  try {
    const m = execFileSync('ldd', [dawn]).toString().match(/libstdc\+\+\.so\.6 => (\S+)/);
    lib = m ? realpathSync(m[1]) : '';
  } catch {
    // no ldd: go without
  }
  if (!lib) return { bytes: 0 };
  const out = join(outDir, 'lib', 'libstdc++.so.6.xz');
  const fp = fingerprint(lib);
  if (existsSync(out) && previous.libstdcxx?.fingerprint === fp) return previous.libstdcxx;
  mkdirSync(dirname(out), { recursive: true });
  xz(lib, out);
  return { fingerprint: fp, from: lib, bytes: statSync(out).size };
}

/** Debian's Vulkan loader into .gl/ (the device README's recipe); a warning, not a failure, when the mirror is out of reach. */
function fetchDebs(root) {
  const gl = join(root, '.gl');
  const have = existsSync(gl) ? readdirSync(gl).filter((f) => f.endsWith('.deb')) : [];
  if (DEBS.every((d) => have.some((f) => f.startsWith(`${d}_`)))) return { debs: have, reused: true };
  mkdirSync(gl, { recursive: true });
  const lists = '/tmp/amd64-apt-lists';
  mkdirSync(join(lists, 'partial'), { recursive: true });
  const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`];
  try {
    execFileSync('apt-get', [...o, 'update'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
    execFileSync('apt-get', [...o, 'download', ...DEBS], { cwd: gl, stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
  } catch (e) {
    console.warn(
      `WARNING: could not download ${DEBS.join(' ')} into .gl/ (${e.message.split('\n')[0]}). The run script then relies on the ` +
        `device image's own libvulkan. To fetch them by hand, in the repository root:\n` +
        `  mkdir -p .gl /tmp/amd64/partial; o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'; ` +
        `apt-get $o update; (cd .gl && apt-get $o download ${DEBS.join(' ')})`,
    );
  }
  return { debs: readdirSync(gl).filter((f) => f.endsWith('.deb')) };
}

function git(root, args) {
  try {
    return execFileSync('git', args, { cwd: root }).toString().trim();
  } catch {
    return '';
  }
}

/** A hash of the sources the bundle is made of, as they stand (tracked or not), so a stale bundle can be told apart. */
export function sourceHash(root = ROOT) {
  const h = createHash('sha256');
  const files = checkoutFiles(root)
    .filter((f) => /^(src|shaders)\//.test(f) && !/\.test\.ts$/.test(f))
    .sort();
  for (const f of files) {
    const p = join(root, f);
    if (!existsSync(p)) continue;
    h.update(f).update('\0').update(readFileSync(p)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

async function pack(root) {
  const outDir = join(root, '.device');
  mkdirSync(outDir, { recursive: true });
  const previous = readManifest(outDir);
  const started = Date.now();
  const bundle = await bundleCli(root, outDir);
  const webgpu = packWebgpu(root, outDir, previous);
  const node = packNode(outDir, previous);
  const libstdcxx = packLibstdcxx(root, outDir, previous);
  // A dawn.node unpacked by a local run of h200-speed.sh would travel too (20 MiB): only the .xz should.
  rmSync(join(outDir, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node'), { force: true });
  const gl = fetchDebs(root);
  const manifest = {
    packedAt: new Date().toISOString(),
    commit: git(root, ['rev-parse', 'HEAD']),
    dirty: git(root, ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'shaders']) !== '',
    sourceHash: sourceHash(root),
    node: { ...node, reused: undefined },
    dawn: { ...webgpu, reused: undefined },
    libstdcxx,
    bundleBytes: statSync(bundle).size,
    debs: gl.debs,
  };
  writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`.device/ ready in ${((Date.now() - started) / 1000).toFixed(0)} s:`);
  console.log(`  node.xz            ${mib(node.bytes)}  (Node ${node.version}${node.stripped ? ', stripped' : ''}${node.reused ? ', reused' : ''})`);
  console.log(`  finetune.mjs       ${mib(manifest.bundleBytes)}  (commit ${manifest.commit.slice(0, 10)}${manifest.dirty ? ' + uncommitted changes' : ''})`);
  console.log(`  dawn.node.xz       ${mib(webgpu.bytes)}  (webgpu ${webgpu.version}, ${mib(webgpu.unpackedBytes)} unpacked${webgpu.reused ? ', reused' : ''})`);
  console.log(`  libstdc++.so.6.xz  ${mib(libstdcxx.bytes)}  (${libstdcxx.from ?? 'not found'})`);
  console.log(`  .gl/               ${gl.debs.length ? gl.debs.join(' ') : 'empty: the device image must have libvulkan'}`);
  const t = travelling(root, checkoutFiles(root), { exclude: PARKED, carried: CARRIED });
  printTravelling(t, 'will travel (big files parked, .device and .gl carried)');
  if (!t.ok) {
    console.error(`ERROR: ${mib(t.total)} is over the device tool's ${mib(LIMIT_BYTES)}: the call would be refused.`);
    return 1;
  }
  const parked = PARKED.filter((f) => !existsSync(join(root, f)));
  console.log(
    parked.length === PARKED.length
      ? 'the big files are parked: ready for the device call.'
      : `before the device call: node scripts/device/pack.mjs --park (and --unpark right after it).`,
  );
  return 0;
}

/** Warns when the bundle was made from other sources than the checkout now holds. */
function checkFresh(root) {
  const m = readManifest(join(root, '.device'));
  if (!m.sourceHash) {
    console.error('ERROR: no .device/manifest.json: run node scripts/device/pack.mjs first.');
    return false;
  }
  if (m.sourceHash !== sourceHash(root)) {
    console.error('ERROR: src/ or shaders/ changed since .device/finetune.mjs was bundled: run node scripts/device/pack.mjs again.');
    return false;
  }
  return true;
}

function sizeNow(root) {
  const t = travelling(root, checkoutFiles(root), { carried: CARRIED });
  printTravelling(t, 'would travel now');
  if (!t.ok) console.error(`ERROR: over the device tool's ${mib(LIMIT_BYTES)}${PARKED.some((f) => existsSync(join(root, f))) ? ': park the big files first (--park)' : ''}.`);
  return t.ok;
}

export async function main(argv) {
  const root = ROOT;
  const [flag, ...rest] = argv;
  if (rest.length) {
    console.error(`unexpected arguments: ${rest.join(' ')}`);
    return 2;
  }
  if (flag === '--park' || flag === '--unpark') {
    const toPark = flag === '--park';
    const r = parkFiles(root, PARK_DIR, PARKED, toPark);
    for (const l of r.lines) console.log(l);
    if (toPark && r.ok) {
      console.log('WARNING: git now sees these tracked files as deleted. Do not commit until --unpark has put them back.');
      const fresh = checkFresh(root);
      return sizeNow(root) && fresh ? 0 : 1;
    }
    return r.ok ? 0 : 1;
  }
  if (flag === '--size') {
    const fresh = checkFresh(root);
    return sizeNow(root) && fresh ? 0 : 1;
  }
  if (flag === undefined) return pack(root);
  console.error('usage: node scripts/device/pack.mjs [--park | --unpark | --size]');
  return 2;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
