// A Tether handler: one request per fresh instance. `tether build` makes the component the
// manifest serves (componentize-js, its command in tether.toml).

import { echo, flush, request, response, sleep, warmUp } from './tether.js';

async function main() {
  response.setHeader('content-type', 'text/plain');
  echo('hello from JavaScript\n');
  // `?sleep=MS` waits before it finishes: a client that leaves meanwhile stops the guest here.
  const ms = request.queryU64('sleep', 0);
  if (ms > 0) {
    flush();
    await sleep(ms);
    echo('slept\n');
  }
}

// Runs `main` once while the component is built, so that requests start with it compiled.
export const handle = warmUp(main, ['/']);
