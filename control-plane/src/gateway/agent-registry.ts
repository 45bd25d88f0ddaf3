/**
 * The store's record of which replica holds each environment's agent
 * (`agent_sessions`): a replica claims an environment when its agent opens a
 * work stream there (the epoch grows by one), renews its leases while the
 * agent stays, and lets them lapse when the agent leaves (the row and its
 * epoch stay, so epochs never go back). Other replicas read
 * the record, cached for a second, to know that an agent they do not hold is
 * connected elsewhere and worth routing a task to.
 */
import type { Logger } from "@dray/common";
import { and, eq, gt, inArray, sql } from "drizzle-orm";
import type { Db } from "../store/open-store.js";
import { agentSessions } from "../store/schema.js";

/** Who holds an environment's agent. */
export interface AgentHolder {
  agentId: string;
  replicaId: string;
  epoch: number;
}

/** Options of {@link AgentRegistry}. */
export interface AgentRegistryOptions {
  db: Db;
  replicaId: string;
  logger: Logger;
  /** How long a claim lasts without renewal. @default 15000 */
  leaseMs?: number;
  /** How long the other replicas' claims are cached. @default 1000 */
  cacheMs?: number;
}

/** See the module comment. */
export class AgentRegistry {
  private readonly leaseMs: number;
  private readonly cacheMs: number;
  private holders = new Map<string, AgentHolder>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Environments this replica holds, with their epochs. */
  private readonly mine = new Map<string, number>();
  /**
   * Claims found dead (no replica answered for them), by environment: their
   * epoch, ignored until a newer session claims the environment. A replica
   * that died leaves its claims until their leases lapse.
   */
  private readonly unreachable = new Map<string, number>();

  constructor(private readonly options: AgentRegistryOptions) {
    this.leaseMs = options.leaseMs ?? 15_000;
    this.cacheMs = options.cacheMs ?? 1_000;
  }

  /** Renews this replica's leases every third of the lease, and keeps the cache fresh. */
  start(): void {
    void this.reload();
    this.timer = setInterval(() => void this.renew().catch(() => {}), Math.max(250, this.leaseMs / 3));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Records that this replica now holds the environment's agent; resolves with the new epoch. */
  async claim(environmentId: string, agentId: string): Promise<number> {
    const now = new Date();
    const lease = new Date(now.getTime() + this.leaseMs);
    const [row] = await this.options.db
      .insert(agentSessions)
      .values({
        environmentId,
        agentId,
        replicaId: this.options.replicaId,
        epoch: 1,
        connectedAt: now,
        leaseUntil: lease,
      })
      .onConflictDoUpdate({
        target: agentSessions.environmentId,
        set: {
          agentId,
          replicaId: this.options.replicaId,
          epoch: sql`${agentSessions.epoch} + 1`,
          connectedAt: now,
          leaseUntil: lease,
        },
      })
      .returning({ epoch: agentSessions.epoch });
    const epoch = row?.epoch ?? 1;
    this.mine.set(environmentId, epoch);
    return epoch;
  }

  /**
   * Ends this replica's claim of the environment, unless a newer session
   * (another epoch) took it over. The row stays with its lease lapsed, so the
   * environment's next session gets a higher epoch still: agents refuse tasks
   * from an epoch older than the newest they have seen.
   */
  async release(environmentId: string): Promise<void> {
    const epoch = this.mine.get(environmentId);
    this.mine.delete(environmentId);
    if (epoch === undefined) return;
    await this.options.db
      .update(agentSessions)
      .set({ leaseUntil: new Date() })
      .where(
        and(
          eq(agentSessions.environmentId, environmentId),
          eq(agentSessions.replicaId, this.options.replicaId),
          eq(agentSessions.epoch, epoch),
        ),
      );
  }

  /** Extends the leases of the environments this replica holds, then reloads the cache. */
  async renew(): Promise<void> {
    if (this.mine.size > 0) {
      await this.options.db
        .update(agentSessions)
        .set({ leaseUntil: new Date(Date.now() + this.leaseMs) })
        .where(
          and(
            eq(agentSessions.replicaId, this.options.replicaId),
            inArray(agentSessions.environmentId, [...this.mine.keys()]),
          ),
        );
    }
    await this.reload();
  }

  /** Reads every live claim into the cache. */
  private async reload(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const rows = await this.options.db
          .select()
          .from(agentSessions)
          .where(gt(agentSessions.leaseUntil, new Date()));
        this.holders = new Map(
          rows.map((r) => [r.environmentId, { agentId: r.agentId, replicaId: r.replicaId, epoch: r.epoch }]),
        );
        this.loadedAt = Date.now();
      } catch (error) {
        this.options.logger.debug("agent registry reload failed", { error: String(error) });
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  /**
   * The holder of the environment's agent on another replica, from the cache
   * (reloaded in the background once it is older than the cache time).
   */
  heldElsewhere(environmentId: string): AgentHolder | undefined {
    if (Date.now() - this.loadedAt > this.cacheMs) void this.reload();
    const holder = this.holders.get(environmentId);
    if (!holder || holder.replicaId === this.options.replicaId) return undefined;
    return (this.unreachable.get(environmentId) ?? 0) >= holder.epoch ? undefined : holder;
  }

  /**
   * Records that no replica answered for the environment's claim of `epoch`
   * (the one a task was sent under): that claim no longer counts. A newer
   * claim, made while the task was out (the agent moved to a live replica),
   * still does.
   */
  markUnreachable(environmentId: string, epoch: number): void {
    if ((this.unreachable.get(environmentId) ?? 0) < epoch) this.unreachable.set(environmentId, epoch);
  }

  /** Reloads now (tests, and before waiting for an agent). */
  refresh(): Promise<void> {
    return this.reload();
  }
}
