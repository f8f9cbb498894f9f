// Checks ElastiCache-style Auto Discovery with two real Node discovery clients.
//
// Usage:
//   node discovery_node.js CONFIG_PORT EXPECTED_PORT... [--expect-change NEW_PORT...]
//                          [--host 127.0.0.1] [--keys 100] [--timeout 30]
//
// Clients (npm), installed outside the repo:
//   npm install --prefix /tmp/ferrocache-npm memcached-elasticache@1.1.1 memcache-plus@0.3.1
//   NODE_PATH=/tmp/ferrocache-npm/node_modules node discovery_node.js ...
//
// 1. memcached-elasticache (wraps node `memcached`; sends `version`, then `config get cluster`,
//    polls every autoDiscoverInterval, here 500 ms) must emit `autoDiscover` with exactly the
//    expected nodes; N keys are set/get through it and each must sit on exactly one expected
//    node (plain-socket `get`).
// 2. memcache-plus (`autodiscover: true`, discovery once at connect) must connect to exactly the
//    expected nodes; same set/get + placement check.
// 3. With --expect-change: prints READY, waits for one line on stdin (EOF also continues; at
//    most --timeout s), then waits at most --timeout s until memcached-elasticache reports the
//    NEW_PORTs, repeats its set/get check, and checks that a fresh memcache-plus discovers them.
//
// Both clients connect to the hostname field (field 1) of host|ip|port, so it must resolve.
// Prints progress lines, READY / CHANGED, and OK. Exit: 0 pass, 1 check failed, 2 usage,
// 3 a client package is missing.
'use strict';

const net = require('net');

const INSTALL = 'npm install --prefix /tmp/ferrocache-npm memcached-elasticache@1.1.1 memcache-plus@0.3.1 ' +
  '(then NODE_PATH=/tmp/ferrocache-npm/node_modules)';
let ElastiCache, MemcachePlus;
try {
  ElastiCache = require('memcached-elasticache');
  MemcachePlus = require('memcache-plus');
} catch (e) {
  console.error(`missing Node client (${e.message.split('\n')[0]}); install with: ${INSTALL}`);
  process.exit(3);
}

class CheckFailed extends Error {}
function check(cond, msg) { if (!cond) throw new CheckFailed(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sorted = (a) => [...a].map(Number).sort((x, y) => x - y);
const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
const portsOf = (hosts) => sorted(hosts.map((h) => h.split(':').pop()));

function parseArgs(argv) {
  const a = { host: '127.0.0.1', keys: 100, timeout: 30, pos: [], change: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--host') a.host = argv[++i];
    else if (v === '--keys') a.keys = Number(argv[++i]);
    else if (v === '--timeout') a.timeout = Number(argv[++i]);
    else if (v === '--expect-change') {
      a.change = [];
      while (i + 1 < argv.length && /^\d+$/.test(argv[i + 1])) a.change.push(Number(argv[++i]));
    } else if (/^\d+$/.test(v)) a.pos.push(Number(v));
    else { console.error(`unknown argument ${v}`); process.exit(2); }
  }
  if (a.pos.length < 2 || (a.change && a.change.length === 0)) {
    console.error('usage: discovery_node.js CONFIG_PORT EXPECTED_PORT... [--expect-change NEW_PORT...] ' +
      '[--host H] [--keys N] [--timeout S]');
    process.exit(2);
  }
  a.configPort = a.pos[0];
  a.expected = a.pos.slice(1);
  return a;
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => {
    t = setTimeout(() => rej(new CheckFailed(`${what}: no answer within ${ms / 1000} s`)), ms);
  })]).finally(() => clearTimeout(t));
}

// Plain-socket multi-get; resolves to Map key -> value (strings) for keys the server holds.
function rawGetMany(host, port, keys, timeoutMs) {
  return withTimeout(new Promise((resolve, reject) => {
    const found = new Map();
    const sock = net.connect(port, host);
    let buf = Buffer.alloc(0);
    let chunk = 0;
    const sendNext = () => {
      const ks = keys.slice(chunk * 50, chunk * 50 + 50);
      if (ks.length === 0) { sock.end(); resolve(found); return; }
      chunk++;
      sock.write(`get ${ks.join(' ')}\r\n`);
    };
    sock.on('connect', sendNext);
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const line = buf.slice(0, eol).toString();
        if (line === 'END') { buf = buf.slice(eol + 2); sendNext(); continue; }
        const p = line.split(' ');
        if (p[0] !== 'VALUE') { reject(new CheckFailed(`unexpected reply from ${port}: ${line}`)); return; }
        const n = Number(p[3]);
        if (buf.length < eol + 2 + n + 2) return;
        found.set(p[1], buf.slice(eol + 2, eol + 2 + n).toString());
        buf = buf.slice(eol + 2 + n + 2);
      }
    });
  }), timeoutMs, `raw get on ${port}`);
}

async function placement(host, ports, keys, valueOf, timeoutMs, label) {
  const where = new Map();
  for (const p of ports) {
    const got = await rawGetMany(host, p, keys, timeoutMs);
    for (const [k, v] of got) {
      check(v === valueOf(k), `${label}: key ${k} on ${p} has value ${v}`);
      if (!where.has(k)) where.set(k, []);
      where.get(k).push(p);
    }
  }
  const dist = {};
  for (const p of ports) dist[p] = 0;
  for (const k of keys) {
    const w = where.get(k) || [];
    check(w.length === 1, `${label}: key ${k} found on nodes [${w}], expected exactly one of [${ports}]`);
    dist[w[0]]++;
  }
  console.log(`${label}: ${keys.length} keys set/get ok, placement ${JSON.stringify(dist)}`);
  if (ports.length > 1 && keys.length >= 50) {
    check(Object.values(dist).filter((c) => c > 0).length > 1, `${label}: all keys on one node ${JSON.stringify(dist)}`);
  }
}

// ---- memcached-elasticache -------------------------------------------------------------

function ecCall(client, fn, ...args) {
  return new Promise((resolve, reject) => {
    client[fn](...args, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function ecExercise(client, a, ports, tag) {
  const keys = [];
  for (let i = 0; i < a.keys; i++) keys.push(`disco-ec-${tag}-${process.pid}-${String(i).padStart(4, '0')}`);
  const valueOf = (k) => `v:${k}`;
  for (const k of keys) {
    check(await withTimeout(ecCall(client, 'set', k, valueOf(k), 0), a.timeout * 1000, `set ${k}`) === true,
      `memcached-elasticache set ${k} failed`);
  }
  for (const k of keys) {
    const v = await withTimeout(ecCall(client, 'get', k), a.timeout * 1000, `get ${k}`);
    check(v === valueOf(k), `memcached-elasticache get ${k} returned ${v}`);
  }
  await placement(a.host, ports, keys, valueOf, a.timeout * 1000, `memcached-elasticache ${tag}`);
}

// ---- memcache-plus ----------------------------------------------------------------------

async function mpDiscover(a, ports, tag) {
  const client = new MemcachePlus({
    hosts: [`${a.host}:${a.configPort}`], autodiscover: true, netTimeout: 2000,
    onNetError: (e) => console.error(`memcache-plus net error: ${e}`),
  });
  const deadline = Date.now() + a.timeout * 1000;
  // getHostList() replaces client.hosts with the discovered "host:port" list and only then
  // fills client.connections, so ready() (all connections open) implies discovery is done.
  while (!(client.ring && client.ready())) {
    check(Date.now() < deadline, `memcache-plus not ready after ${a.timeout} s (hosts ${client.hosts})`);
    await sleep(50);
  }
  console.log(`memcache-plus: ${tag} hosts ${JSON.stringify(client.hosts)}`);
  check(same(portsOf(client.hosts), ports), `memcache-plus discovered ports [${portsOf(client.hosts)}], expected [${sorted(ports)}]`);
  const keys = [];
  for (let i = 0; i < a.keys; i++) keys.push(`disco-mp-${tag}-${process.pid}-${String(i).padStart(4, '0')}`);
  const valueOf = (k) => `v:${k}`;
  for (const k of keys) await withTimeout(client.set(k, valueOf(k)), a.timeout * 1000, `memcache-plus set ${k}`);
  for (const k of keys) {
    const v = await withTimeout(client.get(k), a.timeout * 1000, `memcache-plus get ${k}`);
    check(v === valueOf(k), `memcache-plus get ${k} returned ${v}`);
  }
  await placement(a.host, sorted(ports), keys, valueOf, a.timeout * 1000, `memcache-plus ${tag}`);
}

function waitStdinLine(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); process.stdin.pause(); resolve(); }
    process.stdin.on('data', (d) => { if (d.toString().includes('\n')) done(); });
    process.stdin.on('end', done);
    process.stdin.on('error', done);
    process.stdin.resume();
  });
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const expected = sorted(a.expected);

  let lastNodes = null;
  const discovered = [];
  const ec = new ElastiCache(`${a.host}:${a.configPort}`, {
    autoDiscoverInterval: 500, timeout: 2000, retries: 0, retry: 1000, reconnect: 1000, idle: 60000,
  });
  ec.on('autoDiscover', (nodes) => { lastNodes = nodes; discovered.push(nodes); });
  ec.on('autoDiscoverFailure', (err) => console.error(`memcached-elasticache autoDiscoverFailure: ${err}`));

  let deadline = Date.now() + a.timeout * 1000;
  while (lastNodes === null) {
    check(Date.now() < deadline, `memcached-elasticache: no autoDiscover within ${a.timeout} s`);
    await sleep(20);
  }
  console.log(`memcached-elasticache: autoDiscover ${JSON.stringify(lastNodes)}`);
  check(same(portsOf(lastNodes), expected), `memcached-elasticache found ports [${portsOf(lastNodes)}], expected [${expected}]`);
  await ecExercise(ec, a, expected, 'initial');

  await mpDiscover(a, expected, 'initial');

  if (a.change) {
    console.log('READY');
    await waitStdinLine(a.timeout * 1000);
    const want = sorted(a.change);
    deadline = Date.now() + a.timeout * 1000;
    while (!same(portsOf(lastNodes), want)) {
      check(Date.now() < deadline, `memcached-elasticache nodes still ${JSON.stringify(lastNodes)} after ${a.timeout} s, expected [${want}]`);
      await sleep(50);
    }
    console.log(`CHANGED memcached-elasticache autoDiscover ${JSON.stringify(lastNodes)}`);
    await ecExercise(ec, a, want, 'changed');
    await mpDiscover(a, want, 'changed');
  }
  ec.end();
}

main().then(() => {
  console.log('OK');
  process.exit(0);
}, (e) => {
  if (e instanceof CheckFailed) console.log(`FAIL: ${e.message}`);
  else console.log(`FAIL: ${e && e.stack || e}`);
  process.exit(1);
});
