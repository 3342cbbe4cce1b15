// The JavaScript SDK for Tether guests: an ES module over the bindings componentize-js
// generates from wit/tether.wit (the `tether:guest/*` imports below). Types and docs are in
// tether.d.ts; guest/sdk/README.md shows the same API in every language.
//
// The names are the Rust SDK's (guest/src/lib.rs) in JavaScript's spelling. Host calls that
// fail throw an `OutputError`, `BodyError` or `HeadError` whose `reason` is the WIT case name.

import * as rawConn from 'tether:guest/conn@0.1.0';
import * as rawLifecycle from 'tether:guest/lifecycle@0.1.0';
import * as rawOutput from 'tether:guest/output@0.1.0';
import * as rawRequest from 'tether:guest/request@0.1.0';
import * as rawResponse from 'tether:guest/response@0.1.0';

/// The host's interfaces. Every call goes through `host`, which `warmUp` points at stand-ins
/// while the component is built.
const realHost = {
  conn: rawConn,
  lifecycle: rawLifecycle,
  output: rawOutput,
  request: rawRequest,
  response: rawResponse,
};
let host = realHost;

export const CONNECTION_NORMAL = 0;
export const CONNECTION_ABORTED = 1;
export const CONNECTION_TIMEOUT = 2;

/** A host call refused; `reason` is the WIT case name (`aborted`, `too-large`...). */
export class TetherError extends Error {
  constructor(reason) {
    super(reason);
    this.name = new.target.name;
    this.reason = reason;
  }
}
export class OutputError extends TetherError {}
export class BodyError extends TetherError {}
export class HeadError extends TetherError {}

/// The WIT error case of a failed generated call: componentize-js throws the `result`'s error
/// value, wrapped in an error whose `payload` it is.
function reasonOf(error) {
  if (error !== null && typeof error === 'object' && 'payload' in error) return String(error.payload);
  if (typeof error === 'string') return error;
  throw error;
}

/// Calls `f`, turning a failed `result` into an `ErrorClass`.
function call(ErrorClass, f) {
  try {
    return f();
  } catch (error) {
    throw new ErrorClass(reasonOf(error));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBytes(data) {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return encoder.encode(String(data));
}

export function echo(data) {
  try {
    host.output.write(toBytes(data));
  } catch (error) {
    // Like `echo`, delivery problems are not the writer's concern: an abort traps the guest
    // unless it ignores aborts, and then `connectionStatus` tells.
    reasonOf(error);
  }
}

export function write(data) {
  call(OutputError, () => host.output.write(toBytes(data)));
}

export function flush() {
  call(OutputError, () => host.output.flush());
}

export function connectionStatus() {
  return host.conn.status();
}

export function connectionAborted() {
  return host.conn.aborted();
}

export function ignoreUserAbort(setting) {
  return host.conn.ignoreUserAbort(setting === undefined || setting === null ? undefined : Boolean(setting));
}

export function reportAbortedWrites() {
  host.conn.reportAbortedWrites();
}

export function finishRequest() {
  return host.lifecycle.finishRequest();
}

export function setTimeLimit(seconds) {
  host.lifecycle.setTimeLimit(seconds);
}

export function log(line) {
  if (host === realHost) console.log(String(line));
}

export function sleep(ms) {
  // While warming up, a sleep never ends and sets no timer: no timer may outlive the build.
  if (host !== realHost) return new Promise(() => {});
  return new Promise((resolve) => setTimeout(resolve, Number(ms)));
}

/// `application/x-www-form-urlencoded` decoding as the Rust SDK does it: `+` is a space, `%XX`
/// a byte, a `%` without two hex digits stays, invalid UTF-8 becomes U+FFFD.
function formDecode(text) {
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length);
  let n = 0;
  const hex = (b) => (b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102);
  for (let i = 0; i < bytes.length; ) {
    if (bytes[i] === 0x25 && i + 2 < bytes.length && hex(bytes[i + 1]) && hex(bytes[i + 2])) {
      out[n++] = parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16);
      i += 3;
    } else {
      out[n++] = bytes[i] === 0x2b ? 0x20 : bytes[i];
      i += 1;
    }
  }
  return decoder.decode(out.subarray(0, n));
}

const U64_MAX = 18446744073709551615n;
const BODY_CHUNK = 64 * 1024; // bytes asked for per read by `request.body`; the host may return fewer

export const request = {
  method: () => host.request.method(),
  target: () => host.request.target(),
  protocol: () => host.request.protocol(),
  remoteAddr: () => host.request.remoteAddr() ?? undefined,
  scheme: () => host.request.scheme(),
  path() {
    const target = host.request.target();
    const q = target.indexOf('?');
    return q < 0 ? target : target.slice(0, q);
  },
  queryString() {
    const target = host.request.target();
    const q = target.indexOf('?');
    return q < 0 ? undefined : target.slice(q + 1);
  },
  queryParam(name) {
    const query = request.queryString();
    if (query === undefined) return undefined;
    const pairs = query.split('&');
    for (let i = pairs.length - 1; i >= 0; i--) {
      const eq = pairs[i].indexOf('=');
      const [key, value] = eq < 0 ? [pairs[i], ''] : [pairs[i].slice(0, eq), pairs[i].slice(eq + 1)];
      if (formDecode(key) === name) return formDecode(value);
    }
    return undefined;
  },
  queryU64(name, fallback) {
    const value = request.queryParam(name);
    if (value === undefined || !/^\+?[0-9]+$/.test(value)) return fallback;
    const number = BigInt(value.replace(/^\+/, ''));
    return number <= U64_MAX ? Number(number) : fallback;
  },
  headers: () => host.request.headers(),
  header(name) {
    const lower = name.toLowerCase();
    const values = host.request.headers().filter(([n]) => n === lower).map(([, v]) => v);
    if (values.length === 0) return undefined;
    const strict = new TextDecoder('utf-8', { fatal: true });
    try {
      return values.map((v) => strict.decode(v)).join(', ');
    } catch {
      return undefined;
    }
  },
  serverVars: () => host.request.serverVars(),
  serverVar(name) {
    const found = host.request.serverVars().findLast(([n]) => n === name);
    if (found === undefined) return undefined;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(found[1]);
    } catch {
      return undefined;
    }
  },
  readBody: (max) => call(BodyError, () => host.request.readBody(max)),
  body() {
    const chunks = [];
    let length = 0;
    for (;;) {
      const chunk = request.readBody(BODY_CHUNK);
      if (chunk.length === 0) break;
      chunks.push(chunk);
      length += chunk.length;
    }
    const body = new Uint8Array(length);
    let at = 0;
    for (const chunk of chunks) {
      body.set(chunk, at);
      at += chunk.length;
    }
    return body;
  },
};

export const response = {
  setStatus: (code) => call(HeadError, () => host.response.setStatus(code)),
  setHeader: (name, value) => call(HeadError, () => host.response.setHeader(name, value)),
  appendHeader: (name, value) => call(HeadError, () => host.response.appendHeader(name, value)),
  removeHeader: (name) => call(HeadError, () => host.response.removeHeader(name)),
  headersSent: () => host.response.headersSent(),
  status: () => host.response.status(),
  headers: () => host.response.headers(),
};

/// The host's interfaces as a warm-up sees them: a request for `target` with no headers and
/// no body, from a client that stays; output and head changes go nowhere.
function standInHost(target) {
  const nothing = () => undefined;
  return {
    conn: { status: () => CONNECTION_NORMAL, aborted: () => false, ignoreUserAbort: () => false, reportAbortedWrites: nothing },
    lifecycle: { finishRequest: () => true, setTimeLimit: nothing },
    output: { write: nothing, flush: nothing },
    request: {
      method: () => 'GET',
      target: () => target,
      protocol: () => 'HTTP/1.1',
      remoteAddr: nothing,
      scheme: () => 'http',
      headers: () => [],
      serverVars: () => [],
      readBody: () => new Uint8Array(0),
    },
    response: {
      setStatus: nothing,
      setHeader: nothing,
      appendHeader: nothing,
      removeHeader: nothing,
      headersSent: () => false,
      status: () => 200,
      headers: () => [],
    },
  };
}

/// Enters the generated binding of each host call that takes an argument with an argument it
/// cannot convert (a symbol), so that the binding is compiled into the snapshot and throws a
/// `TypeError` before it reaches the host (which is absent while the component is built: a call
/// that got through would fail the build, not a request). A binding's first call costs tens of
/// microseconds otherwise, in every request. Calls without arguments cannot be entered so.
function warmBindings() {
  const unconvertible = Symbol('warm-up');
  const calls = [
    () => rawOutput.write(unconvertible),
    () => rawRequest.readBody(unconvertible),
    () => rawResponse.setStatus(unconvertible),
    () => rawResponse.setHeader(unconvertible, unconvertible),
    () => rawResponse.appendHeader(unconvertible, unconvertible),
    () => rawResponse.removeHeader(unconvertible),
    () => rawLifecycle.setTimeLimit(unconvertible),
  ];
  for (const call of calls) {
    try {
      call();
    } catch (error) {
      if (error?.name !== 'TypeError') throw error;
    }
  }
}

/// Runs `handler` once for each of `targets` now, against stand-ins for the host, and returns
/// the `handle` to export. Called at the top level of the module, it runs while componentize-js
/// builds the component, which snapshots the JavaScript heap after evaluating the module: the
/// code those requests run is then parsed, compiled and its caches filled in the snapshot
/// instead of in every request's fresh instance.
export function warmUp(handler, targets = ['/']) {
  warmBindings();
  for (const target of targets) {
    host = standInHost(target);
    try {
      Promise.resolve(handler()).catch(() => {});
    } catch {
      // A warm-up request that throws has still compiled what it ran.
    }
  }
  return function handle() {
    host = realHost;
    return handler();
  };
}
