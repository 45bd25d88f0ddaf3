/**
 * Caps on concurrent event streams per token and per organisation. Pure
 * in-memory counting on this replica: a slot is taken when a stream opens and
 * given back when it ends (the client disconnected or the execution ended).
 */
import { DrayError } from "@dray/common";

/** Concurrent event streams one API token may hold on a replica. */
export const MAX_STREAMS_PER_TOKEN = 20;
/** Concurrent event streams one organisation may hold on a replica. */
export const MAX_STREAMS_PER_ORGANISATION = 100;
/** Seconds a refused client is told to wait (`Retry-After`). */
export const STREAM_RETRY_AFTER_SECONDS = 5;

/** Limits of {@link StreamSlots}. */
export interface StreamSlotLimits {
  /** @default MAX_STREAMS_PER_TOKEN */
  perToken?: number;
  /** @default MAX_STREAMS_PER_ORGANISATION */
  perOrganisation?: number;
}

/** A taken slot; `release()` gives it back (once; later calls do nothing). */
export interface StreamSlot {
  release(): void;
}

/**
 * Counts open streams by token and organisation.
 *
 * @example
 * const slot = slots.take(principal.tokenId, organisationId); // throws resource_exhausted past a cap
 * try { … } finally { slot.release(); }
 */
export class StreamSlots {
  readonly perToken: number;
  readonly perOrganisation: number;
  private readonly byToken = new Map<string, number>();
  private readonly byOrganisation = new Map<string, number>();

  constructor(limits: StreamSlotLimits = {}) {
    this.perToken = limits.perToken ?? MAX_STREAMS_PER_TOKEN;
    this.perOrganisation = limits.perOrganisation ?? MAX_STREAMS_PER_ORGANISATION;
  }

  /** Open streams of a token. */
  heldByToken(tokenId: string): number {
    return this.byToken.get(tokenId) ?? 0;
  }

  /** Open streams of an organisation. */
  heldByOrganisation(organisationId: string): number {
    return this.byOrganisation.get(organisationId) ?? 0;
  }

  /**
   * Takes a slot, or throws `resource_exhausted` (HTTP 429) saying which cap
   * was reached and what to do; `details.retryAfterSeconds` is the advised wait.
   */
  take(tokenId: string, organisationId: string): StreamSlot {
    if (this.heldByToken(tokenId) >= this.perToken) {
      throw exhausted(
        `this token already has ${this.perToken} event streams open, the most one token may hold: ` +
          "close a stream you no longer read (or use another token), then retry",
        "token",
        this.perToken,
      );
    }
    if (this.heldByOrganisation(organisationId) >= this.perOrganisation) {
      throw exhausted(
        `this organisation already has ${this.perOrganisation} event streams open, the most it may hold: ` +
          "close streams that are no longer read, then retry",
        "organisation",
        this.perOrganisation,
      );
    }
    bump(this.byToken, tokenId, 1);
    bump(this.byOrganisation, organisationId, 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        bump(this.byToken, tokenId, -1);
        bump(this.byOrganisation, organisationId, -1);
      },
    };
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const next = (map.get(key) ?? 0) + by;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
}

function exhausted(message: string, scope: "token" | "organisation", cap: number): DrayError {
  return new DrayError("resource_exhausted", message, {
    details: { scope, cap, retryAfterSeconds: STREAM_RETRY_AFTER_SECONDS },
  });
}
