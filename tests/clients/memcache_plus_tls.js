// Auto Discovery and a set/get workload over TLS with the npm client memcache-plus (its `tls`
// option: every connection, the discovery one included, is `tls.connect`).
//
// Usage: NODE_EXTRA_CA_CERTS=ca.crt node memcache_plus_tls.js CONFIG_PORT EXPECTED_PORT...
//   npm install --prefix /tmp/ferrocache-npm memcache-plus@0.3.1
//   NODE_PATH=/tmp/ferrocache-npm/node_modules
// memcache-plus 0.3.1 hands its `tls` option to `tls.connect` under a key Node ignores, so the
// CA that signs the servers' certificates is given the way every Node TLS client accepts one:
// NODE_EXTRA_CA_CERTS (verification stays on). Discovery asks `config get cluster` of
// localhost:CONFIG_PORT over TLS; the client must then connect to exactly the EXPECTED_PORTs
// (on localhost), and 50 keys set through it must read back.
// Prints "memcache-plus tls ok" and exits 0; 1 a check failed, 2 usage, 3 the client missing.
'use strict';

let MemcachePlus;
try {
  MemcachePlus = require('memcache-plus');
} catch (e) {
  console.error('memcache-plus is missing: npm install --prefix /tmp/ferrocache-npm memcache-plus@0.3.1');
  process.exit(3);
}

const ports = process.argv.slice(2).map(Number);
if (ports.length < 2 || ports.some((p) => !(p > 0))) {
  console.error('usage: node memcache_plus_tls.js CONFIG_PORT EXPECTED_PORT...');
  process.exit(2);
}
const [configPort, ...expected] = ports;

function fail(msg) {
  console.error(`memcache-plus over TLS: ${msg}`);
  process.exit(1);
}

const timer = setTimeout(() => fail('no result within 30 s'), 30000);

(async () => {
  const client = new MemcachePlus({
    hosts: [`localhost:${configPort}`],
    autodiscover: true,
    tls: {},
    reconnect: false,
    netTimeout: 5000,
    onNetError: (e) => console.error(`memcache-plus net error: ${e}`),
  });
  // ready() is a predicate; discovery replaces client.hosts before it fills client.connections,
  // so ready() with a ring means discovery is done (the 30 s timer bounds the wait).
  while (!(client.ring && client.ready())) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const found = client.hosts.map((h) => Number(h.split(':').pop())).sort((a, b) => a - b);
  const want = [...expected].sort((a, b) => a - b);
  if (JSON.stringify(found) !== JSON.stringify(want)) {
    fail(`discovered ${JSON.stringify(client.hosts)}, expected ports ${JSON.stringify(want)}`);
  }
  for (let i = 0; i < 50; i++) {
    await client.set(`tls-key-${i}`, `value-${i}`);
  }
  for (let i = 0; i < 50; i++) {
    const v = await client.get(`tls-key-${i}`);
    if (v !== `value-${i}`) fail(`tls-key-${i}: got ${JSON.stringify(v)}`);
  }
  clearTimeout(timer);
  client.disconnect();
  console.log('memcache-plus tls ok');
  process.exit(0);
})().catch((e) => fail(e && e.stack ? e.stack : String(e)));
