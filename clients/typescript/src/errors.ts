/**
 * Errors as types: one class per code of API.md's "Errors" table, so that callers can
 * `catch (e) { if (e instanceof NotFoundError) … }` instead of comparing numbers.
 */

/** The `error` member of a JSON-RPC answer, as the daemon sends it. */
export interface WireError {
  code: number;
  message: string;
  data?: WireErrorData | null;
}

/** `error.data` as API.md shapes it; other keys (`index`, `state`, `job_id`, …) may appear. */
export interface WireErrorData {
  kind?: string;
  details?: string;
  field?: string;
  trace_id?: string;
  retry_after_ms?: number;
  index?: number;
  state?: string;
  [key: string]: unknown;
}

/** Every error this library throws. */
export class SemanticaError extends Error {
  /** The JSON-RPC error code (4000, 4001, …, -32601), or a negative local code below -40000. */
  readonly code: number;
  /** `data.kind` (snake_case), e.g. `invalid_format`, `not_found`, `daemon_not_running`. */
  readonly kind: string;
  /** `data.field`: the dotted path of the field a validation error is about. */
  readonly field: string | undefined;
  /** The whole `data` object as the daemon sent it. */
  readonly data: WireErrorData;

  constructor(code: number, message: string, data: WireErrorData = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.kind = typeof data.kind === 'string' ? data.kind : 'unknown';
    this.field = typeof data.field === 'string' ? data.field : undefined;
    this.data = data;
  }
}

/** 4000: params missing, of the wrong type, out of range or too large. */
export class ValidationError extends SemanticaError {
  /** In a batch, the index of the failing job. */
  get index(): number | undefined {
    return typeof this.data.index === 'number' ? this.data.index : undefined;
  }
}

/** 4001: unknown job id. */
export class NotFoundError extends SemanticaError {}

/** 4002: the transition is not allowed from the job's state. */
export class ConflictError extends SemanticaError {
  /** The job's state that refused the transition (`data.state`). */
  get state(): string | undefined {
    return typeof this.data.state === 'string' ? this.data.state : undefined;
  }
}

/** 4003: rate limit or back-pressure; thrown once the client's retries are used up. */
export class ThrottledError extends SemanticaError {
  /** How long the daemon asked to wait before the next try. */
  get retryAfterMs(): number {
    const value = this.data.retry_after_ms;
    return typeof value === 'number' && value >= 0 ? value : RETRY_AFTER_MS_DEFAULT;
  }
}

/** 4010: a TCP call without the right bearer token. */
export class UnauthorizedError extends SemanticaError {}

/** 5000–5999: internal, database or system error on the daemon's side. */
export class ServerError extends SemanticaError {}

/** -32700 / -32600 / -32602 / -32603 and other JSON-RPC protocol errors. */
export class ProtocolError extends SemanticaError {}

/** -32601: the daemon does not know the method (an older daemon than this client). */
export class MethodNotFoundError extends ProtocolError {}

/** Local code of {@link DaemonNotRunningError}. */
export const DAEMON_NOT_RUNNING = -40001;
/** Local code of {@link TransportError}. */
export const TRANSPORT_ERROR = -40002;

/** No daemon answers: no `daemon.json`, no socket, or the connection was refused. */
export class DaemonNotRunningError extends SemanticaError {
  constructor(where: string, cause?: unknown) {
    super(
      DAEMON_NOT_RUNNING,
      `the Semantica daemon is not running (${where}); start it with \`semantica serve\``,
      { kind: 'daemon_not_running', details: where },
    );
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** The connection broke, or the answer was not a JSON-RPC answer. */
export class TransportError extends SemanticaError {
  constructor(message: string, cause?: unknown) {
    super(TRANSPORT_ERROR, message, { kind: 'transport', details: message });
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** What a 4003 without `retry_after_ms` waits. */
export const RETRY_AFTER_MS_DEFAULT = 100;

/** The typed error for a JSON-RPC `error` object. */
export function errorFromWire(error: WireError): SemanticaError {
  const data = error.data !== null && typeof error.data === 'object' ? error.data : {};
  const message = typeof error.message === 'string' ? error.message : 'unknown error';
  const code = error.code;
  switch (code) {
    case 4000:
      return new ValidationError(code, message, data);
    case 4001:
      return new NotFoundError(code, message, data);
    case 4002:
      return new ConflictError(code, message, data);
    case 4003:
      return new ThrottledError(code, message, data);
    case 4010:
      return new UnauthorizedError(code, message, data);
    case -32601:
      return new MethodNotFoundError(code, message, { kind: 'method_not_found', ...data });
  }
  if (code >= 5000 && code <= 5999) return new ServerError(code, message, data);
  if (code >= -32768 && code <= -32000) return new ProtocolError(code, message, data);
  return new SemanticaError(code, message, data);
}
