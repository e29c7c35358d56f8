import type { RouteOptions } from 'fastify';
import type { TSchema } from 'typebox';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The JSON schema of a 2xx answer, for /openapi.json only: answers are
     * neither validated nor serialised with it, so it costs nothing per request.
     */
    answer?: TSchema;
  }
}

interface CollectedRoute {
  method: string;
  url: string;
  schema: Record<string, unknown> | undefined;
  answer: TSchema | undefined;
  auth: boolean;
}

const PARTS: [string, string][] = [
  ['params', 'path'],
  ['querystring', 'query'],
];

/**
 * Builds /openapi.json from the routes as they register (an onRoute hook):
 * the TypeBox schemas already are JSON Schema, so each body, path and query
 * schema goes in as it is. Answers are described by the routes that name
 * one (`config.answer`), loosely otherwise.
 */
export class OpenApiCollector {
  readonly #routes: CollectedRoute[] = [];

  onRoute(route: RouteOptions): void {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      if (m === 'HEAD' || m === 'OPTIONS') continue;
      this.#routes.push({
        method: m.toLowerCase(),
        url: route.url,
        schema: route.schema as Record<string, unknown> | undefined,
        answer: (route.config as { answer?: TSchema } | undefined)?.answer,
        auth: route.onRequest !== undefined,
      });
    }
  }

  document(info: { title: string; version: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of this.#routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const op: Record<string, unknown> = {
        operationId: `${r.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
        responses: {
          ...(r.answer === undefined
            ? {}
            : { '200': { description: 'JSON answer', content: { 'application/json': { schema: r.answer } } } }),
          default: { description: 'JSON answer; errors are {code, message, details?}' },
        },
      };
      if (r.auth) op['security'] = [{ bearer: [] }];
      const parameters: unknown[] = [];
      for (const [key, where] of PARTS) {
        const s = r.schema?.[key] as { properties?: Record<string, unknown>; required?: string[] } | undefined;
        for (const [name, schema] of Object.entries(s?.properties ?? {})) {
          parameters.push({
            name,
            in: where,
            required: where === 'path' || (s?.required ?? []).includes(name),
            schema,
          });
        }
      }
      if (parameters.length > 0) op['parameters'] = parameters;
      if (r.schema?.['body'] !== undefined) {
        op['requestBody'] = { required: true, content: { 'application/json': { schema: r.schema['body'] } } };
      }
      (paths[path] ??= {})[r.method] = op;
    }
    return {
      openapi: '3.1.0',
      info,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      paths,
    };
  }
}
