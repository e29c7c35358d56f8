import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ValidationError, validator } from '@livegraft/protocol';

/**
 * Validates every body, params and querystring with TypeBox through the
 * protocol's validator, so a bad request is a VALIDATION_FAILED error naming
 * each bad field in the same words the CLI and agent use.
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const what = `request ${httpPart ?? 'value'}`;
  const check = validator(schema, what);
  // URL parts are strings on the wire; "3" must become 3 for an integer level.
  const convert = httpPart !== 'body';
  return (value: unknown) => {
    const input = convert ? Value.Convert(schema, value) : value;
    if (check.check(input)) return { value: input };
    return { error: new ValidationError(what, check.problems(input)) };
  };
};
