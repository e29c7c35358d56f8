import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { visibleStrings, visibleText } from '../src/visible-text.ts';

describe('visibleText', () => {
  it('shows C0, DEL and C1 controls as visible stand-ins', () => {
    assert.equal(visibleText('a\x1b[2Jb\x07\x7f\x9bc'), 'a␛[2Jb␇␡\\u009bc');
    assert.equal(visibleText('one\ntwo\tthree'), 'one␊two␉three');
    assert.equal(visibleText('one\ntwo\tthree\r', true), 'one\ntwo\tthree␍');
    assert.equal(visibleText('plain ünïcode ✓'), 'plain ünïcode ✓');
  });

  it('as a JSON reviver cleans every string of a parsed answer (what the dashboard renders)', () => {
    const parsed = JSON.parse(
      JSON.stringify({ hostname: 'h\x1b]0;x\x07', list: [{ lastError: 'e\x1b[31m' }], n: 1 }),
      visibleStrings,
    ) as unknown;
    assert.deepEqual(parsed, { hostname: 'h␛]0;x␇', list: [{ lastError: 'e␛[31m' }], n: 1 });
  });
});
