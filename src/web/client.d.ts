// TypeScript declarations of wsreactor's browser client (/client.js). docs/client.md
// describes the behaviour; docs/messaging.md the protocol underneath.

/** Where a channel's publications stand: its newest offset seen and the channel's life. */
export interface Position {
  offset: number;
  /** 16 hex digits naming one life of the channel (a restart makes a new one). */
  epoch: string;
}

/** Any message from the server. */
export interface Envelope<P = unknown> {
  type: string;
  payload?: P;
  id?: string;
  correlationId?: string;
  channel?: string;
  /** A publication's offset (1, 2, ...) on its channel. */
  offset?: number;
  epoch?: string;
  /** The sender's client id (absent when the backend HTTP API sent it). */
  from?: string;
  to?: string;
  event?: string;
  /** Server time, ms since the Unix epoch. */
  timestamp?: number;
  [field: string]: unknown;
}

/** The payload of `subscribed`. */
export interface Subscribed extends Position {
  /** true: every publication after `since` follows, in order, before any live one.
   *  false (with `since` given): the page must reload its state; onReset fires. */
  recovered: boolean;
}

export interface PresenceClient {
  clientId: string;
  user: string | null;
}

export interface AuthAck {
  user: string | null;
  /** When the token expires, ms since the Unix epoch, or null. */
  expiresAt: number | null;
}

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface StateEvent {
  state: ConnectionState;
  /** connecting, reconnecting: the attempt number (0 for the first connection). */
  attempt?: number;
  /** reconnecting: ms until the next attempt. */
  delay?: number;
  /** reconnecting, closed: the close code of the connection that ended
   *  (4000 when the client gave up on it: no pong, connect timeout). */
  code?: number;
  reason?: string;
  /** closed: no more reconnection (close() was called, or authentication failed). */
  final?: boolean;
  /** open */
  clientId?: string;
  user?: string | null;
}

/** Errors: a server `code` (bad_request, unauthorized, forbidden, not_found, too_large,
 *  unavailable, rate_limited, ...) or the client's own "timeout", "closed", "dropped". */
export class WsrError extends Error {
  constructor(code: string, message?: string, envelope?: Envelope);
  readonly code: string;
  /** The error envelope from the server, or the envelope that failed. */
  readonly envelope?: Envelope;
}

export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface ClientOptions {
  /** A JWT to present (when getToken is not given). */
  token?: string | null;
  /** Called before every connection and before the token expires; may return a Promise.
   *  After a 4001/4003/4002 close the client reconnects only if it yields a new token. */
  getToken?: TokenSource | null;
  /** "query": ?token= in the URL (default); "auth": an in-band `auth` after opening. */
  tokenTransport?: "query" | "auth";
  /** Reconnection backoff: random in [0, min(maxDelay, minDelay * 2^attempt)] ms.
   *  Defaults 500 and 30000. */
  minDelay?: number;
  maxDelay?: number;
  /** Sends kept while not connected (default 1000); past it the oldest is dropped. */
  queueSize?: number;
  /** Default timeout of request/publish/send/presence, ms (default 10000; 0: none). */
  requestTimeout?: number;
  /** Give up on a socket that has not said connection:established in this long (10000). */
  connectTimeout?: number;
  /** An application ping this often while open, ms (default 25000; 0: off). */
  pingInterval?: number;
  /** No pong within this long closes the socket and reconnects (default 10000). */
  pingTimeout?: number;
  /** Refresh the token this long before it expires, at most a quarter of its life (30000). */
  refreshMargin?: number;
  /** A WebSocket constructor other than the global one. */
  WebSocket?: { new (url: string): WebSocket } | null;
  onState?: (e: StateEvent) => void;
  onReset?: (channel: string, subscribed: Subscribed) => void;
  onDropped?: (envelope: Envelope) => void;
  onError?: (error: unknown) => void;
}

export interface RequestOptions {
  timeout?: number;
}

export type Unsubscribe = () => void;

export type ChannelHandler<P = unknown> = (payload: P, envelope: Envelope<P>) => void;

export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly options: Required<ClientOptions>;
  readonly state: ConnectionState;
  /** Of the current (or last) connection: 32 hex digits, new on every connection. */
  readonly clientId: string | null;
  readonly user: string | null;

  /** Starts connecting (connect() does it); returns this. */
  open(): this;
  /** Closes for good: no reconnection; queued and unanswered requests reject "closed". */
  close(code?: number, reason?: string): void;

  /** Every incoming envelope of this type ("*": all of them). */
  on<P = unknown>(type: string, handler: (envelope: Envelope<P>) => void): Unsubscribe;
  onState(handler: (e: StateEvent) => void): Unsubscribe;
  /** A channel answered recovered:false after a reconnection: reload its state. */
  onReset(handler: (channel: string, subscribed: Subscribed) => void): Unsubscribe;
  /** A queued send was dropped because the queue was full (its Promise rejected "dropped"). */
  onDropped(handler: (envelope: Envelope) => void): Unsubscribe;
  /** Failures no Promise reports: getToken throwing, a resubscription refused. */
  onError(handler: (error: unknown) => void): Unsubscribe;

  /** Any message type with an id; resolves with the answer (pong, ack, ...). */
  request<P = unknown>(type: string, payload?: unknown,
                       options?: RequestOptions & { channel?: string }): Promise<Envelope<P>>;
  /** Resolves with the publication's offset. */
  publish(channel: string, payload: unknown, options?: RequestOptions & { event?: string }): Promise<number>;
  /** A direct message; resolves when the server acknowledges it (not_found rejects). */
  send(to: string, event: string, payload: unknown,
       options?: RequestOptions & { correlationId?: string }): Promise<void>;
  /** send() with a fresh correlationId; resolves with the peer's reply carrying it. */
  call<P = unknown>(to: string, event: string, payload: unknown,
                    options?: RequestOptions & { correlationId?: string }): Promise<Envelope<P>>;
  presence(channel: string, options?: RequestOptions): Promise<PresenceClient[]>;

  /** Subscribes, and stays subscribed across reconnections, resuming from the last
   *  position seen. Resolves with the first `subscribed` answer. */
  subscribe<P = unknown>(channel: string, handler?: ChannelHandler<P>,
                         options?: { since?: Position }): Promise<Subscribed>;
  /** Removes the handler, or the channel (and unsubscribes) without one / with the last. */
  unsubscribe(channel: string, handler?: ChannelHandler<any>): void;
  /** The position a reconnection resumes the channel from. */
  position(channel: string): Position | null;
  /** Gets a token from getToken() now and sends it in-band. */
  refreshToken(): Promise<AuthAck | undefined>;
}

/** new Client(url, options).open() */
export function connect(url: string, options?: ClientOptions): Client;
export default connect;
