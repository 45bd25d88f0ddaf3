/** Zod schemas of the API's shared shapes; they also make up the OpenAPI document. */
import {
  ERROR_CODES,
  isDrayError,
  MAX_ENTITY_NAME_LENGTH,
  MAX_ENTITY_PART_LENGTH,
  normaliseEntityName,
} from "@dray/common";
import { z } from "@hono/zod-openapi";

/** An ISO-8601 timestamp. */
export const Timestamp = z.string().openapi({ format: "date-time", example: "2026-05-01T12:00:00.000Z" });

/** The error shape of every failed request. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES).openapi({ example: "not_found" }),
      message: z.string().openapi({ example: "environment 5d0e… was not found" }),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");

const ERROR_DESCRIPTIONS = {
  400: "Invalid request (`invalid_argument`): the message names the offending fields",
  401: "Missing, invalid or revoked bearer token (`unauthenticated`)",
  403: "The token's role may not do this (`permission_denied`)",
  404: "No such resource in the caller's organisation (`not_found`)",
  409: "Conflicts with existing state (`already_exists`)",
  413: "The request body is larger than the limit (`invalid_argument`)",
  503: "The environment's agent is not connected (`unavailable`)",
} as const;
type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

/**
 * OpenAPI response entries with the error shape, for the given statuses.
 *
 * @example
 * responses: { 200: ok(Environment, "The environment"), ...errorResponses(401, 404) }
 */
export function errorResponses<const S extends readonly ErrorStatus[]>(
  ...statuses: S
): {
  [K in S[number]]: { description: string; content: { "application/json": { schema: typeof ErrorSchema } } };
} {
  const out: Record<number, unknown> = {};
  for (const status of statuses) {
    out[status] = {
      description: ERROR_DESCRIPTIONS[status],
      content: { "application/json": { schema: ErrorSchema } },
    };
  }
  return out as never;
}

/** An OpenAPI JSON response entry. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A JSON request body entry (required). */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** `{id}` path parameter. Ids that are not UUIDs answer 404 like unknown ones. */
export const IdParams = z.object({
  id: z.string().openapi({
    param: { name: "id", in: "path" },
    format: "uuid",
    description: "The resource's id (a UUID); any other value answers 404 like an unknown id",
  }),
});

/** The bearer security requirement every /api/v1 route carries. */
export const bearerSecurity = [{ bearer: [] }];

/** The canonical entity name of `value`, or a zod issue with the parser's message. */
function toEntityName(value: string | { schema: string; table: string }, ctx: z.core.$RefinementCtx): string {
  try {
    return normaliseEntityName(value);
  } catch (error) {
    if (!isDrayError(error)) throw error;
    ctx.issues.push({ code: "custom", message: error.message, input: value });
    return z.NEVER;
  }
}

const ENTITY_NAME_TEXT =
  '`schema.table`; a part that contains `.` or `"` is double-quoted with quotes doubled ' +
  '(`"sch.ema".t`, `sch."ema.t"`). The fully quoted form `"schema"."table"` is accepted too; ' +
  "an unquoted name with more than one dot is ambiguous and refused. Names are exact (never case-folded).";

/** An entity name as text; the value the route sees is the canonical name. */
export const EntityNameText = z
  .string()
  .transform(toEntityName)
  .openapi({ description: ENTITY_NAME_TEXT, example: "public.accounts", maxLength: MAX_ENTITY_NAME_LENGTH });

/** An entity named as text or as `{ schema, table }`; the value the route sees is the canonical name. */
export const EntityNameInput = z
  .union([
    z.string().openapi({ description: ENTITY_NAME_TEXT, maxLength: MAX_ENTITY_NAME_LENGTH }),
    z
      .strictObject({
        schema: z.string().max(MAX_ENTITY_PART_LENGTH),
        table: z.string().max(MAX_ENTITY_PART_LENGTH),
      })
      .openapi({ description: "The entity by its parts, exactly as named in the database" }),
  ])
  .transform(toEntityName)
  .openapi({ example: "public.accounts" });
