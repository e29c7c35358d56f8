import { readFileSync } from 'node:fs';
import * as fontkit from 'fontkit';
import PDFDocument from 'pdfkit';
import { LivegraftError } from '@livegraft/protocol';

/**
 * PDF reports through pdfkit, with embedded (subset) Unicode fonts: DejaVu
 * Sans for Latin, Greek and Cyrillic, and a fallback font for what DejaVu
 * lacks (CJK), so host names, tags and other user-given text print as given.
 * The fonts are read from the system once (Debian: fonts-dejavu-core,
 * fonts-droid-fallback). Coordinates are PDF points from the bottom-left
 * corner, y at the text's baseline.
 */

export interface TextStyle {
  size: number;
  bold?: boolean;
}

/** Font files: regular and bold are required; fallbacks are used, in order, for characters those lack. */
export interface PdfFontFiles {
  regular: string;
  bold: string;
  fallbacks: readonly string[];
}

export const DEFAULT_PDF_FONTS: PdfFontFiles = {
  regular: '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  bold: '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  fallbacks: [
    '/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf',
    '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc',
  ],
};

interface LoadedFont {
  name: string;
  bytes: Buffer;
  has(codePoint: number): boolean;
}

interface LoadedFonts {
  regular: LoadedFont;
  bold: LoadedFont;
  fallbacks: LoadedFont[];
}

function loadFont(name: string, path: string): LoadedFont {
  const bytes = readFileSync(path);
  const font = fontkit.create(bytes);
  if (!('hasGlyphForCodePoint' in font)) throw new Error(`${path} is a font collection, not one font`);
  return { name, bytes, has: (cp) => font.hasGlyphForCodePoint(cp) };
}

const cache = new Map<string, LoadedFonts>();

/** The fonts, read and parsed once per process; PDF_FONT_MISSING names the file and the package when one is absent. */
function fonts(files: PdfFontFiles): LoadedFonts {
  const key = JSON.stringify(files);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const required = (name: string, path: string): LoadedFont => {
    try {
      return loadFont(name, path);
    } catch (err) {
      throw new LivegraftError(
        'PDF_FONT_MISSING',
        `PDF reports need the font ${path} (Debian package fonts-dejavu-core): ${(err as Error).message}`,
      );
    }
  };
  const loaded: LoadedFonts = {
    regular: required('regular', files.regular),
    bold: required('bold', files.bold),
    fallbacks: [],
  };
  files.fallbacks.forEach((path, i) => {
    try {
      loaded.fallbacks.push(loadFont(`fallback${i}`, path));
    } catch {
      /* optional: characters only it has print as the replacement character */
    }
  });
  cache.set(key, loaded);
  return loaded;
}

/** Control characters (and tabs) become spaces: they have no glyph and would only confuse a reader. */
function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, ' ');
}

export interface PdfOptions {
  width: number;
  height: number;
  title: string;
  createdAt: Date;
  producer: string;
  fonts?: PdfFontFiles;
}

/** Runs of text that one font can show. */
interface Run {
  font: LoadedFont;
  text: string;
}

export class PdfWriter {
  readonly width: number;
  readonly height: number;
  readonly #doc: PDFKit.PDFDocument;
  readonly #fonts: LoadedFonts;
  readonly #chunks: Buffer[] = [];
  readonly #done: Promise<void>;
  #pages = 0;
  #current = -1;

  constructor(o: PdfOptions) {
    this.width = o.width;
    this.height = o.height;
    this.#fonts = fonts(o.fonts ?? DEFAULT_PDF_FONTS);
    this.#doc = new PDFDocument({
      autoFirstPage: false,
      bufferPages: true,
      pdfVersion: '1.4',
      compress: true,
      info: { Title: o.title, Producer: o.producer, Creator: o.producer, CreationDate: o.createdAt },
    });
    for (const f of [this.#fonts.regular, this.#fonts.bold, ...this.#fonts.fallbacks]) {
      this.#doc.registerFont(f.name, f.bytes);
    }
    this.#doc.on('data', (c: Buffer) => this.#chunks.push(c));
    this.#done = new Promise((resolve, reject) => {
      this.#doc.on('end', () => resolve());
      this.#doc.on('error', reject);
    });
  }

  get pageCount(): number {
    return this.#pages;
  }

  addPage(): number {
    this.#doc.addPage({ size: [this.width, this.height], margin: 0 });
    this.#current = this.#pages++;
    return this.#current;
  }

  #page(page: number): PDFKit.PDFDocument {
    if (page !== this.#current) {
      this.#doc.switchToPage(page);
      this.#current = page;
    }
    return this.#doc;
  }

  /** Splits text into runs by the first font (of the style's, then the fallbacks) that has each character. */
  #runs(text: string, style: TextStyle): Run[] {
    const main = style.bold === true ? this.#fonts.bold : this.#fonts.regular;
    const runs: Run[] = [];
    for (const ch of printable(text)) {
      const cp = ch.codePointAt(0) ?? 32;
      const font = main.has(cp) ? main : (this.#fonts.fallbacks.find((f) => f.has(cp)) ?? main);
      const shown = font === main && !main.has(cp) ? '\ufffd' : ch;
      const last = runs.at(-1);
      if (last?.font === font) last.text += shown;
      else runs.push({ font, text: shown });
    }
    return runs;
  }

  textWidth(text: string, style: TextStyle): number {
    let w = 0;
    for (const r of this.#runs(text, style)) {
      w += this.#doc.font(r.font.name).fontSize(style.size).widthOfString(r.text);
    }
    return w;
  }

  /** The longest prefix of text (with "..." when cut) that fits in width. */
  fitText(text: string, width: number, style: TextStyle): string {
    const chars = [...printable(text)];
    if (this.textWidth(text, style) <= width) return chars.join('');
    let lo = 0;
    let hi = chars.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.textWidth(`${chars.slice(0, mid).join('')}...`, style) <= width) lo = mid;
      else hi = mid - 1;
    }
    return lo === 0 ? '' : `${chars.slice(0, lo).join('')}...`;
  }

  text(page: number, x: number, y: number, text: string, style: TextStyle): void {
    const doc = this.#page(page);
    let at = x;
    for (const r of this.#runs(text, style)) {
      doc.font(r.font.name).fontSize(style.size).fillColor('black');
      doc.text(r.text, at, this.height - y, { lineBreak: false, baseline: 'alphabetic' });
      at += doc.widthOfString(r.text);
    }
  }

  /** A filled rectangle in a gray level (0 black .. 1 white). */
  box(page: number, x: number, y: number, w: number, h: number, gray: number): void {
    const level = Math.round(gray * 255);
    this.#page(page)
      .rect(x, this.height - y - h, w, h)
      .fill([level, level, level]);
  }

  line(page: number, x1: number, y1: number, x2: number, y2: number, width = 0.5): void {
    this.#page(page)
      .moveTo(x1, this.height - y1)
      .lineTo(x2, this.height - y2)
      .lineWidth(width)
      .strokeColor('black')
      .stroke();
  }

  async toBuffer(): Promise<Buffer> {
    this.#doc.end();
    await this.#done;
    return Buffer.concat(this.#chunks);
  }
}
