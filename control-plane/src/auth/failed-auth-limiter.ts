/**
 * Rate limit of failed authentications per client address (HTTP API and agent
 * gateway). Pure and in memory, one per replica: after `maxFailures` failures
 * within `windowMs` of the first one, the address is refused until that window
 * ends, without looking tokens up. Successes are not counted, and a credential
 * that already succeeded from the address is still let through while the
 * address is refused, so a client that goes wrong (or an attacker) next to
 * working clients does not lock them out. Memory is bounded: at most
 * `maxAddresses` addresses (oldest dropped first) and `knownPerAddress`
 * credential fingerprints per address.
 */

/** Options of {@link createFailedAuthLimiter}. */
export interface FailedAuthLimiterOptions {
  /** Failures allowed per address within one window. @default 30 */
  maxFailures?: number;
  /** Length of the window, from the first failure. @default 60_000 */
  windowMs?: number;
  /** Addresses tracked at most, for failures and for known credentials each. @default 10_000 */
  maxAddresses?: number;
  /** Credentials remembered per address as having succeeded from it. @default 16 */
  knownPerAddress?: number;
}

/** Failed-authentication counters per address. See {@link createFailedAuthLimiter}. */
export interface FailedAuthLimiter {
  /**
   * Seconds until `address` may try again (≥ 1), or 0 when it may try now:
   * it is not refused, or `credential` (a fingerprint, e.g. the token's hash)
   * already succeeded from it.
   */
  retryAfterSeconds(address: string, nowMs: number, credential?: string): number;
  /** Counts one failed authentication of `address`. */
  recordFailure(address: string, nowMs: number): void;
  /** Remembers that `credential` (a fingerprint) succeeded from `address`. */
  recordSuccess(address: string, credential: string): void;
  /** Addresses with failures currently tracked (for tests and metrics). */
  size(): number;
}

/** Defaults of {@link FailedAuthLimiterOptions}. */
export const FAILED_AUTH_DEFAULTS = {
  maxFailures: 30,
  windowMs: 60_000,
  maxAddresses: 10_000,
  knownPerAddress: 16,
} as const;

/** Sets `key` last in `map` (newest), dropping the oldest entries past `cap`. */
function setNewest<V>(map: Map<string, V>, key: string, value: V, cap: number): void {
  map.delete(key);
  while (map.size >= cap) {
    const oldest = map.keys().next().value;
    if (oldest === undefined) break;
    map.delete(oldest);
  }
  map.set(key, value);
}

/**
 * A fixed-window failure counter per address.
 *
 * @example
 * const limiter = createFailedAuthLimiter();
 * if (limiter.retryAfterSeconds(ip, Date.now(), hash) > 0) return tooMany();
 * if (ok) limiter.recordSuccess(ip, hash); else limiter.recordFailure(ip, Date.now());
 */
export function createFailedAuthLimiter(options: FailedAuthLimiterOptions = {}): FailedAuthLimiter {
  const maxFailures = options.maxFailures ?? FAILED_AUTH_DEFAULTS.maxFailures;
  const windowMs = options.windowMs ?? FAILED_AUTH_DEFAULTS.windowMs;
  const maxAddresses = options.maxAddresses ?? FAILED_AUTH_DEFAULTS.maxAddresses;
  const knownPerAddress = options.knownPerAddress ?? FAILED_AUTH_DEFAULTS.knownPerAddress;
  // Insertion order = age, so the first entries are the oldest.
  const windows = new Map<string, { startedMs: number; failures: number }>();
  const known = new Map<string, string[]>();

  const current = (address: string, nowMs: number) => {
    const entry = windows.get(address);
    if (entry && nowMs - entry.startedMs >= windowMs) {
      windows.delete(address);
      return undefined;
    }
    return entry;
  };

  return {
    retryAfterSeconds(peer, nowMs, credential) {
      const address = limitKeyOf(peer);
      const entry = current(address, nowMs);
      if (!entry || entry.failures < maxFailures) return 0;
      if (credential !== undefined && known.get(address)?.includes(credential)) return 0;
      return Math.max(1, Math.ceil((entry.startedMs + windowMs - nowMs) / 1000));
    },
    recordFailure(peer, nowMs) {
      const address = limitKeyOf(peer);
      const entry = current(address, nowMs);
      if (entry) entry.failures += 1;
      else setNewest(windows, address, { startedMs: nowMs, failures: 1 }, maxAddresses);
    },
    recordSuccess(peer, credential) {
      const address = limitKeyOf(peer);
      const list = known.get(address) ?? [];
      if (list.includes(credential)) return;
      const next = [...list, credential].slice(-knownPerAddress);
      setNewest(known, address, next, maxAddresses);
    },
    size: () => windows.size,
  };
}

/**
 * The key an address is limited under: an IPv4 address as it is (also when
 * IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its /64 prefix, since one
 * client usually holds a whole /64 and could otherwise rotate through it.
 *
 * @example
 * limitKeyOf("2001:db8:1:2:aaaa::1") // "2001:db8:1:2::/64"
 * limitKeyOf("::ffff:10.0.0.7")     // "10.0.0.7"
 */
export function limitKeyOf(address: string): string {
  if (!address.includes(":")) return address;
  const lower = address.toLowerCase();
  if (lower.startsWith("::ffff:") && lower.includes(".")) return lower.slice(7);
  const [head = "", tail = ""] = lower.split("%")[0]!.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const hasGap = lower.includes("::");
  const missing = hasGap ? Math.max(0, 8 - headGroups.length - tailGroups.length) : 0;
  const groups = [...headGroups, ...Array<string>(missing).fill("0"), ...tailGroups];
  const prefix = groups.slice(0, 4).map((g) => g.replace(/^0+/, "") || "0");
  return `${prefix.join(":")}::/64`;
}

let shared: FailedAuthLimiter | undefined;

/**
 * The limiter of this process (one replica), shared by the HTTP API and the
 * agent gateway, so failures on either count together per address.
 */
export function sharedFailedAuthLimiter(): FailedAuthLimiter {
  shared ??= createFailedAuthLimiter();
  return shared;
}

/**
 * The host part of a gRPC peer (`ipv4:1.2.3.4:5678`, `[::1]:5678`, `1.2.3.4:5678`),
 * used as the limiter's key; undefined when there is none.
 */
export function peerAddress(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  let rest = peer;
  for (const scheme of ["ipv4:", "ipv6:"]) if (rest.startsWith(scheme)) rest = rest.slice(scheme.length);
  if (rest.startsWith("[")) {
    const end = rest.indexOf("]");
    return end > 1 ? rest.slice(1, end) : undefined;
  }
  const colon = rest.lastIndexOf(":");
  const host = colon > 0 && rest.indexOf(":") === colon ? rest.slice(0, colon) : rest;
  return host || undefined;
}
