// Types of the minimal Cloudburst client (src/index.js).

export const PROTOCOL_VERSION: 2;
export const PICKLE_EXT: 1;
export const CLIENT_NAME: string;
export const MAX_MESSAGE_BYTES: number;
export const CONNECT_TIMEOUT_MS: number;
export const RETRYABLE: ReadonlySet<string>;

/** What travels as native MessagePack (plus Python objects as `Pickle`). */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Pickle
  | Value[]
  | { [key: string]: Value };

export type Consistency = "lww" | "repeatable_read" | "causal";

export interface CallOptions {
  direct?: boolean;
  consistency?: Consistency;
  outputKey?: string;
  /** The call's deadline (at most an hour): it then fails with `timeout`. */
  timeoutMs?: number;
  /** Re-runs after an executor or worker died under it (at most 10). */
  retries?: number;
  /** Whether the function's own exception or timeout re-runs it too. */
  retryErrors?: boolean;
}

export class CloudburstError extends Error {
  constructor(code: string, message: string, exceptionType?: string | null, traceback?: string | null);
  readonly code: string;
  readonly exceptionType: string | null;
  readonly traceback: string | null;
  readonly retryable: boolean;
}

export class Pickle {
  constructor(data: Uint8Array);
  readonly data: Uint8Array;
}

export class Ref {
  constructor(key: string);
  readonly key: string;
}

export class Concurrent {
  constructor(versions: Value[]);
  readonly versions: Value[];
}

export class Future {
  readonly call: number;
  readonly key: string;
  get(options?: { timeoutMs?: number }): Promise<Value | Set<Value> | Concurrent>;
  cancel(): Promise<boolean>;
}

export class Connection {
  readonly maxMessageBytes: number;
  readonly server: string | null;
  request(op: string, fields?: Record<string, unknown>): Promise<unknown>;
  ping(): Promise<null>;
  put(key: string, value: Value | Set<Value>): Promise<void>;
  get(key: string): Promise<Value | Set<Value> | Concurrent>;
  delete(key: string): Promise<void>;
  list(what?: "functions" | "dags", prefix?: string): Promise<string[]>;
  registerDag(name: string, functions: string[], connections: [string, string][]): Promise<void>;
  deleteDag(name: string): Promise<void>;
  callFunction(name: string, args?: (Value | Ref)[], options?: CallOptions): Promise<Future | Value>;
  callDag(name: string, args?: Record<string, (Value | Ref)[]>, options?: CallOptions): Promise<Future | Value>;
  cancel(call: number): Promise<boolean>;
  close(): Promise<void>;
}

export function packValue(v: Value | Set<Value>): { value: Value } | { set: Value[] };
export function unpackValue(wire: unknown): Value | Set<Value> | Concurrent;
export const TOKEN_ENV: "CLOUDBURST_TOKEN";
export function resolveToken(url: string, token?: string): string | undefined;
export function connect(url: string, options?: { token?: string; caFile?: string; timeoutMs?: number }): Promise<Connection>;
