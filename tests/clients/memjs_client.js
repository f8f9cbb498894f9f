// Drives a memcached-compatible server over the binary protocol with the npm client memjs
// (binary protocol, SASL PLAIN when a user is given) and checks every reply.
//
// Usage: node memjs_client.js PORT [USER PASSWORD [WRONG_PASSWORD]]
//   npm install --prefix /tmp/ferrocache-npm memjs@1.3.2
//   NODE_PATH=/tmp/ferrocache-npm/node_modules node memjs_client.js ...
// Prints "memjs ok" and exits 0, or names the first mismatch and exits 1 (3: memjs missing).
'use strict';

let memjs;
try {
  memjs = require('memjs');
} catch (e) {
  console.error('memjs is missing: npm install --prefix /tmp/ferrocache-npm memjs@1.3.2');
  process.exit(3);
}

const [port, user, password, wrong] = process.argv.slice(2);
if (!port) {
  console.error('usage: node memjs_client.js PORT [USER PASSWORD [WRONG_PASSWORD]]');
  process.exit(2);
}

function client(pass) {
  const opts = { retries: 0, timeout: 5, conntimeout: 5, logger: { log: () => {} } };
  if (user) {
    opts.username = user;
    opts.password = pass;
  }
  return memjs.Client.create(`127.0.0.1:${port}`, opts);
}

function check(cond, what) {
  if (!cond) {
    throw new Error(what);
  }
}

async function main() {
  const c = client(password);
  const values = [Buffer.alloc(0), Buffer.from('hello'), Buffer.from([0, 13, 10, 255]),
    Buffer.alloc(300000, 120)];
  for (let i = 0; i < values.length; i++) {
    const ok = await c.set(`memjs:${i}`, values[i], { expires: 0 });
    check(ok === true, `set ${i}`);
    const { value } = await c.get(`memjs:${i}`);
    check(value !== null && Buffer.compare(value, values[i]) === 0, `get ${i}`);
  }
  check((await c.get('memjs:absent')).value === null, 'miss');
  check(await c.add('memjs:0', 'x') === false, 'add existing');
  check(await c.add('memjs:new', 'x') === true, 'add new');
  check(await c.replace('memjs:absent', 'x') === false, 'replace missing');
  check(await c.replace('memjs:new', 'y') === true, 'replace');
  check((await c.get('memjs:new')).value.toString() === 'y', 'replaced value');
  check(await c.append('memjs:new', 'z') === true, 'append');
  check((await c.get('memjs:new')).value.toString() === 'yz', 'appended value');
  const inc = await c.increment('memjs:counter', 5, { initial: 10, expires: 0 });
  check(inc.success === true && Number(inc.value) === 10, `increment creates: ${JSON.stringify(inc)}`);
  const inc2 = await c.increment('memjs:counter', 5);
  check(Number(inc2.value) === 15, `increment: ${JSON.stringify(inc2)}`);
  check(await c.touch('memjs:new', 100) === true, 'touch');
  check(await c.delete('memjs:new') === true, 'delete');
  check(await c.delete('memjs:new') === false, 'delete missing');
  const stats = await new Promise((resolve, reject) => {
    c.stats((err, server, s) => (err ? reject(err) : resolve(s)));
  });
  check(stats && stats.version === '1.6.18', `stats: ${JSON.stringify(stats && stats.version)}`);
  c.close();

  if (user && wrong) {
    const bad = client(wrong);
    let failed = false;
    try {
      await bad.get('memjs:0');
    } catch (e) {
      failed = true;
    }
    bad.close();
    check(failed, 'a wrong password is refused');
  }
  console.log('memjs ok');
}

main().then(() => process.exit(0), (e) => {
  console.error(`memjs: ${e.message}`);
  process.exit(1);
});
