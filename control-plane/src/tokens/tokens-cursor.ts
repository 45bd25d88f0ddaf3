/**
 * The opaque `cursor` of GET /tokens pages: the id of the last token of the
 * previous page, base64url-encoded with a version marker. Pure.
 */
import { DrayError } from "@dray/common";
import { isUuid } from "../store/ids.js";

const MARKER = "tok1:";
/** Longer cursors are refused before decoding. */
const MAX_CURSOR_LENGTH = 128;

/** The cursor that continues after the token `lastId`. */
export function encodeTokensCursor(lastId: string): string {
  return Buffer.from(MARKER + lastId, "utf8").toString("base64url");
}

/**
 * The token id a cursor continues after. Throws `invalid_argument` naming
 * `cursor` when it was not made by {@link encodeTokensCursor}.
 */
export function decodeTokensCursor(cursor: string): string {
  const invalid = () =>
    new DrayError(
      "invalid_argument",
      "invalid query parameters: cursor: not a cursor of this list (pass `next` of the previous page)",
      {
        details: { issues: [{ path: "cursor", message: "not a cursor of this list" }] },
      },
    );
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH) throw invalid();
  const decoded = Buffer.from(cursor, "base64url").toString("utf8");
  if (!decoded.startsWith(MARKER)) throw invalid();
  const id = decoded.slice(MARKER.length);
  if (!isUuid(id)) throw invalid();
  return id;
}
