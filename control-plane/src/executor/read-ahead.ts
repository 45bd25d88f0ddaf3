/**
 * Reading ahead: the first page of an entity that is still waiting for the
 * entities it depends on is read from the source while those load, so that
 * when its turn comes its first write can start at once. On a chain of small
 * tables this takes one source round trip per level off the run's path.
 */
import type { ReadResult } from "./agent-port.js";
import type { EntityRunPlan } from "./run-context.js";

/**
 * First pages read ahead of their entity's turn, at most `limit` held at
 * once (each is one batch, so memory stays within `limit × batchBytes`).
 * Pages are read in the order entities are expected to start (level, then
 * name); taking one starts the read of the next. A read is side-effect free,
 * so a page never taken (the run failed or was cancelled) is simply dropped.
 */
export class ReadAhead {
  private readonly held = new Map<string, Promise<ReadResult>>();
  /** Entities whose first page is neither read ahead nor taken yet, in start order. */
  private readonly waiting: EntityRunPlan[];
  private closed = false;

  /**
   * @param entities The run's entities (pass 1, every one starting from its first row).
   * @param limit Pages held at once; 0 turns reading ahead off.
   * @param read Reads the first page of an entity (with the run's retries).
   */
  constructor(
    entities: readonly EntityRunPlan[],
    private readonly limit: number,
    private readonly read: (entity: EntityRunPlan) => Promise<ReadResult>,
  ) {
    this.waiting = [...entities].sort((a, b) => a.level - b.level || (a.entity < b.entity ? -1 : 1));
    this.fill();
  }

  /**
   * The first page of `entity` read ahead, or undefined when it was not (it
   * then reads its own). Taking a page makes room for the next entity's.
   */
  take(entity: string): Promise<ReadResult> | undefined {
    const at = this.waiting.findIndex((e) => e.entity === entity);
    if (at >= 0) this.waiting.splice(at, 1);
    const page = this.held.get(entity);
    this.held.delete(entity);
    this.fill();
    return page;
  }

  /** Reads nothing more, and drops the pages held. */
  close(): void {
    this.closed = true;
    this.held.clear();
    this.waiting.length = 0;
  }

  private fill(): void {
    while (!this.closed && this.held.size < this.limit && this.waiting.length > 0) {
      const entity = this.waiting.shift()!;
      const page = this.read(entity);
      // A page whose entity never starts must not surface as an unhandled rejection.
      page.catch(() => {});
      this.held.set(entity.entity, page);
    }
  }
}
