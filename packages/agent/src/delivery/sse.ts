import { LivegraftError } from '@livegraft/protocol';

/** One line of the stream; the server's events are a few hundred bytes. */
export const MAX_SSE_LINE_BYTES = 16 * 1024;
/** The data of one event (all its `data:` lines together). */
export const MAX_SSE_EVENT_BYTES = 64 * 1024;

export interface SseEvent {
  /** `message` when the server named none. */
  event: string;
  data: string;
  /** The `id:` of this event, if it had one. */
  id?: string;
}

/**
 * A bounded Server-Sent Events parser (the WHATWG algorithm, minus what a
 * server never sends us). Feed it text chunks; it hands back complete
 * events. A line or event past the caps is an error (the caller drops the
 * connection), so a broken or hostile server cannot grow our memory.
 */
export class SseParser {
  #line = '';
  #skipLf = false;
  #event = '';
  #data: string[] = [];
  #dataBytes = 0;
  #id: string | undefined;
  /** The last `id:` seen (the value to send as Last-Event-ID on reconnect). */
  lastEventId: string | undefined;
  /** The server's `retry:` in ms, when it sent one. */
  retryMs: number | undefined;

  /** A new connection: drops any half-received line or event, keeps lastEventId and retryMs. */
  reset(): void {
    this.#line = '';
    this.#skipLf = false;
    this.#event = '';
    this.#data = [];
    this.#dataBytes = 0;
    this.#id = undefined;
  }

  feed(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (this.#skipLf && c === 10 && i === start) {
        // The LF of a CRLF, possibly in the next chunk.
        this.#skipLf = false;
        start = i + 1;
        continue;
      }
      this.#append(chunk.slice(start, i));
      this.#skipLf = c === 13;
      const line = this.#line;
      this.#line = '';
      const ev = this.#processLine(line);
      if (ev !== undefined) out.push(ev);
      start = i + 1;
    }
    if (start < chunk.length) {
      this.#skipLf = false;
      this.#append(chunk.slice(start));
    }
    return out;
  }

  #append(text: string): void {
    if (this.#line.length + text.length > MAX_SSE_LINE_BYTES) {
      throw new LivegraftError('PUSH_STREAM_INVALID', `event stream line longer than ${MAX_SSE_LINE_BYTES} bytes`);
    }
    this.#line += text;
  }

  #processLine(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined; // comment (heartbeat)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#dataBytes += value.length + 1;
        if (this.#dataBytes > MAX_SSE_EVENT_BYTES) {
          throw new LivegraftError('PUSH_STREAM_INVALID', `event larger than ${MAX_SSE_EVENT_BYTES} bytes`);
        }
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (/^[0-9]{1,9}$/.test(value)) this.retryMs = Number(value);
        break;
      default:
      // Unknown fields are ignored, as the spec says.
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    if (this.#id !== undefined) this.lastEventId = this.#id;
    const hadData = this.#data.length > 0;
    const ev: SseEvent = { event: this.#event || 'message', data: this.#data.join('\n') };
    if (this.#id !== undefined) ev.id = this.#id;
    this.#event = '';
    this.#data = [];
    this.#dataBytes = 0;
    this.#id = undefined;
    return hadData ? ev : undefined;
  }
}
