import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, errorBody, type ErrorCode } from '../errors';

/**
 * Answers what Node's HTTP parser rejects before any route sees it (a malformed request line or
 * header, bad Content-Length / chunked framing, junk pipelined after a request, headers over
 * the size limit) with the documented error body, instead of Node's default bare
 * `400 Bad Request` / `431` without a body (found by the request fuzzer, issue 16). A request
 * that timed out keeps Node's `408` (the SDK retries it). When a request read before the junk
 * is still being answered on this connection, that answer is completed first and the
 * connection closed after it (Node's default dropped it, and the client saw no answer at all).
 */
export function answerMalformedRequest(onAnswer?: (code: ErrorCode) => void) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // Whatever happens, the connection is gone soon: a stuck answer cannot pin it (an answer
    // in flight may be a write waiting for its lock and the passive: give it 30 s).
    setTimeout(() => socket.destroy(), inFlight ? 30_000 : 5_000).unref();
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // As Node's default: a 408 unless an answer already started, then close.
      if (!inFlight?.headersSent) socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      else socket.destroy();
      return;
    }
    const appErr =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new AppError('TOO_LARGE', 'request headers are too large')
        : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
          ? new AppError('TOO_LARGE', 'request chunk extensions are too large')
          : new AppError('INVALID_REQUEST', 'malformed HTTP request');
    const body = JSON.stringify(errorBody(appErr));
    if (inFlight && !inFlight.writableFinished) {
      inFlight.shouldKeepAlive = false;
      const close = () => socket.end();
      inFlight.once('finish', close);
      inFlight.once('close', close);
      // The junk is inside this request (its body framing): its body never completes, so answer
      // it here; the route, if it ever runs on, finds the answer sent and stays silent.
      if (!inFlight.req?.complete && !inFlight.headersSent) {
        onAnswer?.(appErr.code);
        inFlight
          .writeHead(appErr.status, {
            'content-type': 'application/json; charset=utf-8',
            'content-length': Buffer.byteLength(body),
          })
          .end(body);
      }
      return;
    }
    onAnswer?.(appErr.code);
    socket.end(
      `HTTP/1.1 ${appErr.status} ${appErr.status === 413 ? 'Content Too Large' : 'Bad Request'}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  };
}

/**
 * An `Expect` other than `100-continue`: Node would answer a bare `417` without a body; answer
 * the documented INVALID_REQUEST instead (RFC 9110 §10.1.1 lets a server refuse it).
 */
export function answerUnsupportedExpectation(onAnswer?: (code: ErrorCode) => void) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    const err = new AppError('INVALID_REQUEST', 'unsupported Expect header (only 100-continue)');
    onAnswer?.(err.code);
    const body = JSON.stringify(errorBody(err));
    res.shouldKeepAlive = false;
    res
      .writeHead(err.status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      })
      .end(body);
  };
}

/**
 * `CONNECT` (a proxy tunnel request): without a listener Node drops the connection with no
 * answer at all; answer METHOD_NOT_ALLOWED in the documented shape and close.
 */
export function answerConnect(onAnswer?: (code: ErrorCode) => void) {
  return (_req: IncomingMessage, socket: Duplex): void => {
    const err = new AppError('METHOD_NOT_ALLOWED', 'CONNECT is not allowed: this is not a proxy');
    onAnswer?.(err.code);
    const body = JSON.stringify(errorBody(err));
    setTimeout(() => socket.destroy(), 5_000).unref();
    socket.on('error', () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${err.status} Method Not Allowed\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  };
}
