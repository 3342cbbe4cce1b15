/**
 * The JavaScript SDK for Tether guests.
 *
 * A guest is a Wasm component that handles one request per instance: it reads the request,
 * sets the response head, writes the body and returns. The API follows PHP's request-lifetime
 * functions, so a PHP programmer finds `echo`, `flush`, `connection_status`,
 * `ignore_user_abort`, `finish_request` and `set_time_limit` where they expect them; the names
 * are the Rust SDK's (`guest/src/lib.rs`) in JavaScript's spelling.
 *
 * ```js
 * import { echo, flush, log, connectionStatus, response, request, sleep } from './tether.js';
 *
 * export async function handle() {
 *   response.setHeader('content-type', 'text/plain');
 *   echo('hello\n');                              // PHP: echo
 *   flush();                                      // PHP: ob_flush(); flush(); a socket write
 *   if (request.queryParam('slow') !== undefined) await sleep(5000); // trapped here if the client leaves
 *   log(`status ${connectionStatus()}`);          // host log, tagged with the request
 * }
 * ```
 *
 * The component's export is the module's `handle` function; it may be `async`, and the
 * component then runs the event loop (timers) until its promise settles. Build with
 * componentize-js (`scripts/build-langs js` shows how). There is no blocking sleep in
 * JavaScript: `await sleep(ms)` waits in the host (WASI poll), where an abort stops the guest
 * at once.
 *
 * `log` writes to stdout, which the host copies into its log, tagged with the request;
 * `console.error` goes to stderr: the log too and, over FastCGI, the web server.
 *
 * Aborts: unless the guest calls `ignoreUserAbort(true)`, a client abort traps the guest
 * wherever it is; no code after that point runs, not even `finally` blocks. With it, the guest
 * keeps running, output is discarded (`write` and `flush` throw `OutputError('aborted')`) and
 * `connectionStatus()` reports `CONNECTION_ABORTED`.
 */

/** `connectionStatus()` bit: the connection is fine (PHP: `CONNECTION_NORMAL`). */
export const CONNECTION_NORMAL: 0;
/** `connectionStatus()` bit: the client went away (PHP: `CONNECTION_ABORTED`). */
export const CONNECTION_ABORTED: 1;
/** `connectionStatus()` bit: a time limit expired (PHP: `CONNECTION_TIMEOUT`). */
export const CONNECTION_TIMEOUT: 2;

/** A host call refused; `reason` is the WIT case name. */
export class TetherError extends Error {
  readonly reason: string;
}
/**
 * Output not delivered: `aborted` (the client left; only seen while ignoring user aborts) or
 * `finished` (after `finishRequest`).
 */
export class OutputError extends TetherError {
  readonly reason: 'aborted' | 'finished';
}
/** A body read failed. */
export class BodyError extends TetherError {
  readonly reason: 'aborted' | 'too-large' | 'malformed' | 'unavailable';
}
/** A response head change refused: `headers-sent` is PHP's "headers already sent". */
export class HeadError extends TetherError {
  readonly reason: 'headers-sent' | 'invalid' | 'reserved';
}

/** What `echo` and `write` take: a string is sent as UTF-8. */
export type Bytes = string | Uint8Array | ArrayBufferView | ArrayBuffer;

/**
 * Appends `data` to the output buffer, ignoring whether the client still listens, like PHP's
 * `echo`. Use `write` to see the outcome.
 */
export function echo(data: Bytes): void;
/**
 * Appends `data` to the output buffer; a full buffer (the route's `output_buffer`) is flushed
 * to the client. Throws `OutputError`.
 */
export function write(data: Bytes): void;
/**
 * Sends the buffered output (and, the first time, the response head) to the client and returns
 * once the socket write returned, like PHP's `ob_flush(); flush();`. Throws `OutputError`.
 */
export function flush(): void;
/** The status bits, `CONNECTION_*` (PHP: `connection_status()`). */
export function connectionStatus(): number;
/** Whether the client went away (PHP: `connection_aborted()`). */
export function connectionAborted(): boolean;
/** Returns the previous setting and, given a value, changes it (PHP: `ignore_user_abort()`). */
export function ignoreUserAbort(setting?: boolean): boolean;
/**
 * In write mode, makes the write that finds the client gone throw `OutputError` (`aborted`)
 * instead of trapping, as all later output then does, so that the guest stops itself and runs
 * its own clean-up (PHP: the bailout that runs shutdown functions). Prompt mode still traps.
 */
export function reportAbortedWrites(): void;
/**
 * Completes the response and releases the connection; the guest keeps running
 * (PHP: `fastcgi_finish_request()`). False if already finished or the client is gone.
 */
export function finishRequest(): boolean;
/** Restarts the execution-time budget, 0 meaning unlimited (PHP: `set_time_limit()`). */
export function setTimeLimit(seconds: number): void;
/** Writes one line to stdout: the host's log, tagged with the request, and nowhere else. */
export function log(line: string): void;
/** Resolves after `ms` milliseconds, waited in the host (JavaScript has no blocking sleep). */
export function sleep(ms: number): Promise<void>;

/** The request being handled (PHP: `$_SERVER`, `$_GET`, `getallheaders()`, `php://input`). */
export const request: {
  /** The request method, e.g. `GET` (PHP: `$_SERVER['REQUEST_METHOD']`). */
  method(): string;
  /** Path plus query (PHP: `$_SERVER['REQUEST_URI']`). */
  target(): string;
  /** `HTTP/1.0`, `HTTP/1.1`, or over FastCGI the web server's (PHP: `$_SERVER['SERVER_PROTOCOL']`). */
  protocol(): string;
  /** The client's `IP:PORT`; undefined over a Unix socket (PHP: `$_SERVER['REMOTE_ADDR']`). */
  remoteAddr(): string | undefined;
  /** `https` behind a web server that terminated TLS and says so, else `http`. */
  scheme(): string;
  /** The path part of the target. */
  path(): string;
  /** The query string without the `?` (PHP: `$_SERVER['QUERY_STRING']`). */
  queryString(): string | undefined;
  /** The query parameter `name` as PHP's `$_GET[name]`: decoded, the last of several wins. */
  queryParam(name: string): string | undefined;
  /** The query parameter `name` as a non-negative integer, or `fallback`. */
  queryU64(name: string, fallback: number): number;
  /** All headers in arrival order, names lowercased, values as bytes (PHP: `getallheaders()`). */
  headers(): Array<[string, Uint8Array]>;
  /** The header `name` (case-insensitive), several joined with `, `; undefined if absent or not UTF-8. */
  header(name: string): string | undefined;
  /** The CGI variables besides the headers (PHP: `$_SERVER` without `HTTP_*`). */
  serverVars(): Array<[string, Uint8Array]>;
  /** The CGI variable `name` (PHP: `$_SERVER[name]`); undefined if absent or not UTF-8. */
  serverVar(name: string): string | undefined;
  /** The next body chunk of at most `max` bytes; empty at the end (PHP: `php://input`). Throws `BodyError`. */
  readBody(max: number): Uint8Array;
  /** The whole body. Throws `BodyError`, dropping what was read before it. */
  body(): Uint8Array;
};

/** The response head. Changes throw `HeadError` once the head is sent. */
export const response: {
  /** Sets the status, 200 by default (PHP: `http_response_code($code)`). */
  setStatus(code: number): void;
  /** Sets a header, replacing earlier ones (PHP: `header("Name: value")`). */
  setHeader(name: string, value: string): void;
  /** Adds a header, keeping earlier ones (PHP: `header("Name: value", false)`). */
  appendHeader(name: string, value: string): void;
  /** Removes every header called `name` (PHP: `header_remove($name)`). */
  removeHeader(name: string): void;
  /** Whether the head was sent (PHP: `headers_sent()`). */
  headersSent(): boolean;
  /** The status set so far, or sent (PHP: `http_response_code()`). */
  status(): number;
  /** The headers set so far, or sent, names lowercased (PHP: `headers_list()`). */
  headers(): Array<[string, string]>;
};

/**
 * Prepares `handler` while the component is built and returns the `handle` to export
 * (PHP: opcache preloading):
 *
 * ```js
 * async function main() { ... }
 * export const handle = warmUp(main, ['/', '/search?q=x']);
 * ```
 *
 * componentize-js evaluates the module once at build time and snapshots the JavaScript heap;
 * every request's fresh instance starts from that snapshot. JavaScript compiles a function
 * when it is first called, so without a warm-up every request compiles the code it runs (a
 * hello spends most of its time there). `warmUp` calls `handler` once for each of `targets`
 * at build time, against stand-ins for the host: a GET of that target with no headers and no
 * body, from a client that stays; output, head changes and `log` go nowhere, `sleep` never
 * ends, and the host calls' bindings are compiled too. The code those requests ran is then
 * compiled in the snapshot.
 *
 * The snapshot also keeps what the warm-up left in module variables, and every request starts
 * with it: a handler that counts requests in a module variable starts each request at the
 * warm-up's count. Keep per-request state in the handler. A handler that loops without
 * sleeping or reading the request never finishes its warm-up, and the build hangs.
 */
export function warmUp(handler: () => unknown, targets?: string[]): () => unknown;
