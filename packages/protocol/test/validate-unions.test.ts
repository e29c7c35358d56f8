import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from 'typebox';
import { validator } from '../src/index.ts';

describe('validation messages of unions', () => {
  const v = validator(
    Type.Object({
      promotesTo: Type.Union([Type.Literal('staging'), Type.Literal('prod'), Type.Null()]),
      limit: Type.Union([Type.String({ pattern: '^[0-9]+[smhd]$' }), Type.Integer({ minimum: 1, maximum: 99 })]),
      format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')])),
    }),
    'test body',
  );

  it('name the allowed values once, not "must be equal to constant" per member and "anyOf"', () => {
    assert.deepEqual(v.problems({ promotesTo: 'qa', limit: 'soon', format: 'xml' }), [
      { path: '/promotesTo', message: 'must be one of "staging", "prod", null' },
      { path: '/limit', message: 'must be one of a string matching ^[0-9]+[smhd]$, an integer from 1 to 99' },
      { path: '/format', message: 'must be one of "json", "csv"' },
    ]);
  });

  it('a thrown error carries the same words', () => {
    assert.throws(
      () => v.parse({ promotesTo: 7, limit: 3 }),
      (e: Error) =>
        /promotesTo: must be one of "staging", "prod", null/.test(e.message) && !/anyOf|constant/.test(e.message),
    );
  });
});
