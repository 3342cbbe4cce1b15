// The Rust example guests and the finish fixture, in JavaScript, in one component.
//
// The behaviour is picked by the last segment of the request path: `hello`, `echo`, `headers`,
// `seed-a`, `seed-a2`, `seed-b` and `finish` do what guest/examples/*.rs and
// guest/fixtures/finish.rs do, with the same query parameters, output and log lines (Rust's
// `{:?}` of a result or an option is spelt out where a line shows one). Any other path gets a
// 404. Sleeps are `await sleep(ms)`: JavaScript has no blocking sleep. Build:
// `scripts/build-langs js`.

import {
  HeadError,
  OutputError,
  BodyError,
  connectionAborted,
  connectionStatus,
  echo,
  finishRequest,
  flush,
  ignoreUserAbort,
  reportAbortedWrites,
  log,
  request,
  response,
  sleep,
  warmUp,
  write,
} from '../../sdk/js/tether.js';

/** Rust's `{:?}` of a string (the escapes `char::escape_debug` makes for ASCII and controls). */
function debugStr(text) {
  let out = '"';
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '\\' || c === '"') out += '\\' + c;
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (c === '\0') out += '\\0';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return out + '"';
}

/** Rust's `{:?}` of an `Option<String>`. */
const debugOption = (value) => (value === undefined ? 'None' : `Some(${debugStr(value)})`);

/** Rust's `{:?}` of `result.map_err(|e| e.name())`: `Ok(())` or `Err("aborted")`. */
function outcome(f) {
  try {
    f();
    return 'Ok(())';
  } catch (error) {
    if (error instanceof OutputError) return `Err(${debugStr(error.reason)})`;
    throw error;
  }
}

/** Runs `f`, ignoring a refused head change, as the Rust examples' `let _ =` and `.ok()`. */
function ignoringHeadError(f) {
  try {
    f();
  } catch (error) {
    if (!(error instanceof HeadError)) throw error;
  }
}

const lossy = new TextDecoder();

/** `iua=1`: ignore user aborts; `report=1`: have an aborted write reported, not trapped. */
function abortSettingsAsAsked() {
  if (request.queryU64('iua', 0) === 1) ignoreUserAbort(true);
  if (request.queryU64('report', 0) === 1) reportAbortedWrites();
}

/** Answers `hello`: the smallest useful guest, used for throughput figures. */
function hello() {
  ignoringHeadError(() => response.setHeader('content-type', 'text/plain'));
  echo('hello\n');
}

/** Sends the request body back, with the request's content type. */
function echoBody() {
  const contentType = request.header('content-type');
  if (contentType !== undefined) ignoringHeadError(() => response.setHeader('content-type', contentType));
  for (;;) {
    let chunk;
    try {
      chunk = request.readBody(64 * 1024);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      log(`body error: ${error.reason}`);
      ignoringHeadError(() => response.setStatus(400));
      break;
    }
    if (chunk.length === 0) break;
    echo(chunk);
  }
}

function parseU16(text) {
  if (!/^\+?[0-9]+$/.test(text)) return undefined;
  const n = Number(text.replace(/^\+/, ''));
  return n <= 0xffff ? n : undefined;
}

/** Lists the request line and headers; `?status=N`, `?flush=1`, `?vars=1`, `?param=NAME`,
 *  `?header=NAME`, `?var=NAME` as headers.rs. */
function headers() {
  ignoringHeadError(() => response.setHeader('content-type', 'text/plain'));
  ignoringHeadError(() => response.setHeader('x-tether-guest', 'headers'));
  const status = request.queryParam('status');
  const code = status === undefined ? undefined : parseU16(status);
  if (code !== undefined) ignoringHeadError(() => response.setStatus(code));
  if (request.queryParam('flush') !== undefined) outcome(flush);
  echo(`${request.method()} ${request.target()} ${request.protocol()}\n`);
  for (const [name, value] of request.headers()) echo(`${name}: ${lossy.decode(value)}\n`);
  echo(`remote ${debugOption(request.remoteAddr())}\n`);
  echo(`scheme ${request.scheme()}\n`);
  if (request.queryParam('vars') !== undefined) {
    for (const [name, value] of request.serverVars()) echo(`var ${name}=${lossy.decode(value)}\n`);
  }
  let name = request.queryParam('param');
  if (name !== undefined) echo(`param ${debugStr(name)} = ${debugOption(request.queryParam(name))}\n`);
  name = request.queryParam('header');
  if (name !== undefined) echo(`header ${debugStr(name)} = ${debugOption(request.header(name))}\n`);
  name = request.queryParam('var');
  if (name !== undefined) echo(`server var ${debugStr(name)} = ${debugOption(request.serverVar(name))}\n`);
}

/** Seed A: log, sleep (`ms`, default 3000), log: a request that produces no output. */
async function seedA() {
  abortSettingsAsAsked();
  const ms = request.queryU64('ms', 3000);
  log(`start cs=${connectionStatus()}`);
  await sleep(ms);
  log(`end cs=${connectionStatus()}`);
}

/** Seed A2: `n` times { write "22222"; flush; log; sleep; log the status }. */
async function seedA2() {
  abortSettingsAsAsked();
  const n = request.queryU64('n', 6);
  const ms = request.queryU64('ms', 1000);
  const firstMs = request.queryU64('first_ms', ms);
  log(`start cs=${connectionStatus()}`);
  for (let i = 1; i <= n; i++) {
    echo('22222');
    const flushed = outcome(flush);
    log(`w ${i} cs=${connectionStatus()} flush=${flushed}`);
    await sleep(i === 1 ? firstMs : ms);
    log(`iter ${i} cs=${connectionStatus()}`);
  }
  log(`end cs=${connectionStatus()}`);
}

const FOUR_KIB = new Uint8Array(4096).fill(0x61);

/** Seed B: 6 times { sleep; write 4096 bytes; log the status; flush }; `outk` limits the
 *  iterations that write. */
async function seedB() {
  abortSettingsAsAsked();
  const ms = request.queryU64('ms', 2000);
  const firstMs = request.queryU64('first_ms', ms);
  const outk = request.queryU64('outk', 6);
  log(`start cs=${connectionStatus()}`);
  for (let i = 0; i < 6; i++) {
    await sleep(i === 0 ? firstMs : ms);
    if (i < outk) echo(FOUR_KIB);
    log(`iter ${i} cs=${connectionStatus()}`);
    if (connectionAborted()) log(`stop ${i}`);
    if (i < outk) {
      const flushed = outcome(flush);
      log(`w ${i} cs=${connectionStatus()} flush=${flushed}`);
    }
  }
  log(`done cs=${connectionStatus()}`);
}

/** Answers, calls `finishRequest`, keeps working: `ms` (default 2000), `post_echo=1`,
 *  `stderr=1`, `iua=1`, `report=1`. */
async function finish() {
  abortSettingsAsAsked();
  echo('response-body\n');
  const finished = finishRequest();
  log(`finished ${finished} cs=${connectionStatus()}`);
  await sleep(request.queryU64('ms', 2000));
  if (request.queryU64('stderr', 0) === 1) console.error('late stderr');
  log(`after_sleep cs=${connectionStatus()}`);
  if (request.queryU64('post_echo', 0) === 1) {
    const wrote = outcome(() => write('late output\n'));
    const flushed = outcome(flush);
    log(`post_echo write=${wrote} flush=${flushed} cs=${connectionStatus()}`);
  }
  log(`end cs=${connectionStatus()}`);
}

const BEHAVIOURS = {
  hello,
  echo: echoBody,
  headers,
  'seed-a': seedA,
  'seed-a2': seedA2,
  'seed-b': seedB,
  finish,
};

async function serve() {
  const segments = request.path().replace(/\/+$/, '').split('/');
  const behaviour = Object.hasOwn(BEHAVIOURS, segments.at(-1)) ? BEHAVIOURS[segments.at(-1)] : undefined;
  if (behaviour === undefined) {
    response.setStatus(404);
    echo(`no such behaviour: ${Object.keys(BEHAVIOURS).join(' ')}\n`);
    return;
  }
  await behaviour();
}

// Each behaviour runs once while the component is built, so that requests start with its code
// compiled (`warmUp` in the SDK).
export const handle = warmUp(
  serve,
  Object.keys(BEHAVIOURS).map((name) => `/${name}?iua=1`).concat(['/']),
);
