// The live feed: one websocket to the alerts service, kept open.
//
// Protocol (services/alerts/streams.py and hub.py): the first message is a hello with the token
// (never in the URL), the subscription and, after a disconnection, the cursor merged from every
// frame received so far. The server answers with frames
//   {"type": "batch", "seq", "time", "cursor", "messages": [...]}
// whose `seq` counts messages on this connection; the first messages are `welcome` and either a
// `snapshot` (everything, replaces what we had) or, when resuming, `resume` followed by exactly
// what changed after the cursor, on any instance: nothing lost, nothing twice. An idle stream still
// gets a frame every 15 s, so silence means a dead connection.
//
// Reconnection: on any close but "unauthorised" (4401) and "forbidden" (4403), after a backoff of
// 0.3 s, 1 s, 2 s, 4 s... up to 10 s (with jitter), resuming from the cursor.

import type { Cursor, Frame, StreamMessage } from "./types";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

export interface ConnectionInfo {
  state: ConnectionState;
  attempt: number;
  retryAt: number | null;
  reason: string | null;
  lastFrameAt: number | null;
  connectionId: string | null;
}

export interface StreamHandlers {
  message(message: StreamMessage): void;
  state(info: ConnectionInfo): void;
  authFailed(reason: string): void;
}

export interface StreamStats {
  connects: number;
  frames: number;
  messages: number;
  snapshots: number;
  resumes: number;
  resyncs: number;
  replayed: number;
  gaps: number;
}

const STALE_MS = 40_000;
const BACKOFF_S = [0.3, 1, 2, 4, 8, 10];
const CLOSE_UNAUTHORISED = 4401;
const CLOSE_FORBIDDEN = 4403;

export class LiveStream {
  cursor: Cursor = {};
  readonly stats: StreamStats = {
    connects: 0,
    frames: 0,
    messages: 0,
    snapshots: 0,
    resumes: 0,
    resyncs: 0,
    replayed: 0,
    gaps: 0,
  };
  private socket: WebSocket | null = null;
  private synced = false;
  private expectedSeq = 0;
  private attempt = 0;
  private stopped = true;
  private timer: number | null = null;
  private watchdog: number | null = null;
  private info: ConnectionInfo = {
    state: "connecting",
    attempt: 0,
    retryAt: null,
    reason: null,
    lastFrameAt: null,
    connectionId: null,
  };

  constructor(
    private readonly path: string,
    private readonly token: () => string,
    private readonly handlers: StreamHandlers,
    private subscription: Record<string, unknown> | null = null,
  ) {}

  get connection(): ConnectionInfo {
    return this.info;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
    this.watchdog = window.setInterval(() => this.checkAlive(), 5_000);
    window.addEventListener("online", this.onOnline);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    if (this.watchdog !== null) window.clearInterval(this.watchdog);
    window.removeEventListener("online", this.onOnline);
    this.socket?.close(1000, "page closed");
    this.socket = null;
  }

  /** Send a command (ping, auth, subscribe, action); false when not connected. */
  send(command: Record<string, unknown>): boolean {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(command));
    return true;
  }

  /** Close the connection and reconnect at once, resuming (also used by the tests). */
  reconnect(reason = "reconnect requested"): void {
    this.socket?.close(4000, reason);
  }

  private onOnline = (): void => {
    if (this.info.state === "reconnecting" && this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
      this.open();
    }
  };

  private setState(patch: Partial<ConnectionInfo>): void {
    this.info = { ...this.info, ...patch };
    this.handlers.state(this.info);
  }

  private url(): string {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${window.location.host}${this.path}`;
  }

  private open(): void {
    this.timer = null;
    this.expectedSeq = 0;
    this.setState({
      state: this.attempt === 0 && !this.synced ? "connecting" : "reconnecting",
      retryAt: null,
      connectionId: null,
    });
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.url());
    } catch (error) {
      this.scheduleReconnect(`cannot open a websocket: ${String(error)}`);
      return;
    }
    this.socket = socket;
    this.stats.connects += 1;
    socket.addEventListener("open", () => {
      const hello: Record<string, unknown> = { type: "hello", token: this.token() };
      if (this.subscription) hello.subscribe = this.subscription;
      if (this.synced && Object.keys(this.cursor).length > 0) hello.resume = { ...this.cursor };
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.onFrame(socket, event.data);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.onClose(event.code, event.reason);
    });
  }

  private onFrame(socket: WebSocket, data: unknown): void {
    if (typeof data !== "string") return;
    let frame: Frame;
    try {
      frame = JSON.parse(data) as Frame;
    } catch {
      return;
    }
    if (frame.type !== "batch") return;
    this.stats.frames += 1;
    if (frame.seq !== this.expectedSeq) {
      // Messages went missing on this connection: resume from the last complete frame.
      this.stats.gaps += 1;
      console.warn(`stream: expected message ${this.expectedSeq}, got ${frame.seq}; resuming`);
      socket.close(4000, "sequence gap");
      return;
    }
    this.expectedSeq += frame.messages.length;
    const now = Date.now();
    let replaying = false;
    for (const message of frame.messages) {
      this.stats.messages += 1;
      if (message.type === "welcome") {
        this.attempt = 0;
        this.setState({ state: "live", connectionId: message.connection_id, reason: null, attempt: 0 });
      } else if (message.type === "snapshot") {
        this.stats.snapshots += 1;
        if (message.resync) this.stats.resyncs += 1;
        this.cursor = { ...message.cursor };
        this.synced = true;
        replaying = false;
      } else if (message.type === "resume") {
        this.stats.resumes += 1;
        this.synced = true;
        replaying = true;
      } else if (replaying && message.type !== "pong" && message.type !== "action_result") {
        this.stats.replayed += 1;
      }
      this.handlers.message(message);
    }
    Object.assign(this.cursor, frame.cursor);
    this.setState({ lastFrameAt: now });
  }

  private onClose(code: number, reason: string): void {
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORISED) {
      this.setState({ state: "offline", reason: reason || "the token was refused", retryAt: null });
      this.handlers.authFailed(reason || "the token was refused or has expired");
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      this.setState({ state: "offline", reason: reason || "this token may not use the live feed", retryAt: null });
      return;
    }
    this.scheduleReconnect(reason || closeMeaning(code));
  }

  private scheduleReconnect(reason: string): void {
    const base = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)]!;
    const delayMs = base * 1000 * (0.8 + 0.4 * Math.random());
    this.attempt += 1;
    this.setState({ state: "reconnecting", attempt: this.attempt, retryAt: Date.now() + delayMs, reason });
    this.timer = window.setTimeout(() => this.open(), delayMs);
  }

  private checkAlive(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const last = this.info.lastFrameAt;
    if (last !== null && Date.now() - last > STALE_MS) {
      socket.close(4000, "no frame for 40 s");
    }
  }
}

function closeMeaning(code: number): string {
  switch (code) {
    case 1000:
      return "closed";
    case 1001:
      return "the server is restarting";
    case 1006:
      return "connection lost";
    case 1012:
      return "the server is restarting";
    case 1013:
      return "the server is not ready yet";
    case 4000:
      return "reconnecting";
    case 4008:
      return "this page fell behind the stream";
    case 4400:
      return "the server did not understand this page";
    case 4429:
      return "too many commands";
    default:
      return `closed (${code})`;
  }
}
