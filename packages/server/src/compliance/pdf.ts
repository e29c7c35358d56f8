import { deflateSync } from 'node:zlib';

/**
 * A small PDF 1.4 writer for text reports: the standard Helvetica fonts
 * (no embedding), text, rules and filled boxes, any number of pages.
 * Coordinates are PDF points from the bottom-left corner.
 */

// Advance widths (1/1000 em) of ASCII 32..126 from the Adobe Helvetica and Helvetica-Bold AFM files.
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
  556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
  260, 334, 584,
];
const HELVETICA_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611,
  556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389,
  280, 389, 584,
];
/** Width used for Latin-1 letters beyond ASCII: close enough for layout. */
const OTHER_WIDTH = 556;

export interface TextStyle {
  size: number;
  bold?: boolean;
}

/** Text as the fonts can show it (WinAnsi, Latin-1 subset): anything else becomes "?". */
export function pdfSafe(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 63;
    out += (c >= 32 && c < 127) || (c >= 160 && c <= 255) ? ch : c === 9 ? ' ' : '?';
  }
  return out;
}

export function textWidth(text: string, style: TextStyle): number {
  const table = style.bold === true ? HELVETICA_BOLD : HELVETICA;
  let w = 0;
  for (const ch of pdfSafe(text)) {
    const c = ch.charCodeAt(0);
    w += c >= 32 && c <= 126 ? (table[c - 32] ?? OTHER_WIDTH) : OTHER_WIDTH;
  }
  return (w * style.size) / 1000;
}

/** The longest prefix of text (with "..." when cut) that fits in width. */
export function fitText(text: string, width: number, style: TextStyle): string {
  const safe = pdfSafe(text);
  if (textWidth(safe, style) <= width) return safe;
  let lo = 0;
  let hi = safe.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${safe.slice(0, mid)}...`, style) <= width) lo = mid;
    else hi = mid - 1;
  }
  return lo === 0 ? '' : `${safe.slice(0, lo)}...`;
}

function escapeString(text: string): string {
  return pdfSafe(text).replace(/[\\()]/g, (c) => `\\${c}`);
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, '');
}

/** D:YYYYMMDDHHmmSSZ */
function pdfDate(d: Date): string {
  const iso = d.toISOString();
  return `D:${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

export interface PdfOptions {
  width: number;
  height: number;
  title: string;
  createdAt: Date;
  producer: string;
}

export class PdfWriter {
  readonly width: number;
  readonly height: number;
  readonly #opts: PdfOptions;
  readonly #pages: string[][] = [];

  constructor(opts: PdfOptions) {
    this.#opts = opts;
    this.width = opts.width;
    this.height = opts.height;
  }

  get pageCount(): number {
    return this.#pages.length;
  }

  addPage(): number {
    this.#pages.push([]);
    return this.#pages.length - 1;
  }

  #ops(page: number): string[] {
    const ops = this.#pages[page];
    if (ops === undefined) throw new RangeError(`no page ${page}`);
    return ops;
  }

  text(page: number, x: number, y: number, text: string, style: TextStyle): void {
    const font = style.bold === true ? 'F2' : 'F1';
    this.#ops(page).push(`BT /${font} ${num(style.size)} Tf ${num(x)} ${num(y)} Td (${escapeString(text)}) Tj ET`);
  }

  line(page: number, x1: number, y1: number, x2: number, y2: number, lineWidth = 0.5): void {
    this.#ops(page).push(`${num(lineWidth)} w ${num(x1)} ${num(y1)} m ${num(x2)} ${num(y2)} l S`);
  }

  /** A filled rectangle in a grey level (0 black, 1 white). */
  box(page: number, x: number, y: number, w: number, h: number, grey: number): void {
    this.#ops(page).push(`${num(grey)} g ${num(x)} ${num(y)} ${num(w)} ${num(h)} re f 0 g`);
  }

  /** The whole file: header, objects, a cross-reference table with exact byte offsets, trailer. */
  toBuffer(): Buffer {
    if (this.#pages.length === 0) this.addPage();
    const chunks: Buffer[] = [];
    const offsets: number[] = [];
    let size = 0;
    const push = (b: Buffer): void => {
      chunks.push(b);
      size += b.length;
    };
    const obj = (id: number, body: Buffer | string, stream?: Buffer): void => {
      offsets[id] = size;
      push(Buffer.from(`${id} 0 obj\n`, 'latin1'));
      push(typeof body === 'string' ? Buffer.from(body, 'latin1') : body);
      if (stream !== undefined) {
        push(Buffer.from('\nstream\n', 'latin1'));
        push(stream);
        push(Buffer.from('\nendstream', 'latin1'));
      }
      push(Buffer.from('\nendobj\n', 'latin1'));
    };
    // A binary comment line tells transfer tools the file is not text.
    push(Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'));
    const pageIds = this.#pages.map((_, i) => 6 + i * 2);
    obj(1, '<< /Type /Catalog /Pages 2 0 R >>');
    obj(2, `<< /Type /Pages /Count ${pageIds.length} /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] >>`);
    obj(3, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
    obj(4, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>');
    obj(
      5,
      `<< /Title (${escapeString(this.#opts.title)}) /Producer (${escapeString(this.#opts.producer)}) ` +
        `/CreationDate (${pdfDate(this.#opts.createdAt)}) >>`,
    );
    this.#pages.forEach((ops, i) => {
      const pageId = 6 + i * 2;
      const content = deflateSync(Buffer.from(ops.join('\n'), 'latin1'));
      obj(
        pageId,
        `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${num(this.width)} ${num(this.height)}] ` +
          `/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents ${pageId + 1} 0 R >>`,
      );
      obj(pageId + 1, `<< /Length ${content.length} /Filter /FlateDecode >>`, content);
    });
    const xrefAt = size;
    const count = 6 + this.#pages.length * 2;
    // Every entry is exactly 20 bytes: 10-digit offset, space, 5-digit generation, space, n/f, " \n".
    let xref = `xref\n0 ${count}\n0000000000 65535 f \n`;
    for (let id = 1; id < count; id++) xref += `${String(offsets[id] ?? 0).padStart(10, '0')} 00000 n \n`;
    push(Buffer.from(xref, 'latin1'));
    push(Buffer.from(`trailer\n<< /Size ${count} /Root 1 0 R /Info 5 0 R >>\nstartxref\n${xrefAt}\n%%EOF\n`, 'latin1'));
    return Buffer.concat(chunks);
  }
}
