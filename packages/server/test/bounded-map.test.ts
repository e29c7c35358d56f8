import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedMap } from '../src/bounded-map.ts';

describe('BoundedMap', () => {
  it('drops the oldest entry once it holds more than its bound', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2).set('c', 3);
    assert.deepEqual(
      [...m.entries()],
      [
        ['b', 2],
        ['c', 3],
      ],
    );
  });

  it('makes a key set again the newest, so the one left alone goes first', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2).set('a', 10).set('c', 3);
    assert.deepEqual([...m.keys()], ['a', 'c']);
    assert.equal(m.get('a'), 10);
  });

  it('refuses a bound below one', () => {
    assert.throws(() => new BoundedMap(0), RangeError);
  });
});
