/**
 * The control plane gateways an agent may dial (DRAY_CONTROL_PLANE_URL) and the
 * order it tries them in. Pure code: no sockets, no timers.
 */
import { backoffDelay } from "@dray/common";

/** One gateway: `host:port` to dial, and whether over TLS. */
export interface GatewayAddress {
  address: string;
  tls: boolean;
}

/** One parsed element: `tls` is undefined for a bare `host:port` (the agent's TLS setting decides). */
export interface GatewayAddressSpec {
  address: string;
  tls: boolean | undefined;
}

/** An example of a valid value, shown in every error. */
export const GATEWAY_LIST_EXAMPLE = "http://cp-1:7070, cp-2:7070";

const SCHEMES: Record<string, boolean> = {
  "http://": false,
  "grpc://": false,
  "https://": true,
  "grpcs://": true,
};

/** `host:port` (host a name, an IPv4 address or a bracketed IPv6 address; port 1–65535), or undefined. */
function hostAndPort(text: string, portRequired: boolean, tls: boolean): string | undefined {
  let host = text;
  let port: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return undefined;
    host = text.slice(0, end + 1);
    const rest = text.slice(end + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return undefined;
      port = rest.slice(1);
    }
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host)) return undefined;
  } else {
    const colon = text.indexOf(":");
    if (colon >= 0) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(host)) return undefined;
  }
  if (port === undefined) {
    if (portRequired) return undefined;
    port = tls ? "443" : "80";
  }
  if (!/^[0-9]{1,5}$/.test(port)) return undefined;
  const n = Number(port);
  if (n < 1 || n > 65_535) return undefined;
  return `${host}:${n}`;
}

/** Parses one trimmed, non-empty element, or returns undefined when it is not a gateway address. */
function parseElement(element: string): GatewayAddressSpec | undefined {
  const lower = element.toLowerCase();
  const scheme = Object.keys(SCHEMES).find((s) => lower.startsWith(s));
  if (scheme) {
    const tls = SCHEMES[scheme] as boolean;
    let rest = element.slice(scheme.length);
    if (rest.endsWith("/")) rest = rest.slice(0, -1);
    const address = hostAndPort(rest, false, tls);
    return address ? { address, tls } : undefined;
  }
  if (element.includes("://")) return undefined;
  const address = hostAndPort(element, true, false);
  return address ? { address, tls: undefined } : undefined;
}

/**
 * Parses a comma-separated list of gateway addresses (spaces around commas
 * allowed). Each element is `http://host:port`, `grpc://host:port` (plain),
 * `https://host:port`, `grpcs://host:port` (TLS) or a bare `host:port`.
 * Returns the addresses in order, or an error message naming the bad element.
 *
 * @example
 * parseGatewayAddresses("http://cp-1:7070, cp-2:7070")
 * // { addresses: [{ address: "cp-1:7070", tls: false }, { address: "cp-2:7070", tls: undefined }] }
 */
export function parseGatewayAddresses(
  value: string,
): { addresses: GatewayAddressSpec[] } | { error: string } {
  const elements = value.split(",").map((e) => e.trim());
  const addresses: GatewayAddressSpec[] = [];
  for (const [i, element] of elements.entries()) {
    const position = elements.length > 1 ? `element ${i + 1} of ${elements.length}` : "the address";
    if (element === "") {
      return {
        error: `${position} is empty: list gateway addresses separated by commas (e.g. ${GATEWAY_LIST_EXAMPLE})`,
      };
    }
    const parsed = parseElement(element);
    if (!parsed) {
      return {
        error:
          `${position}, "${element}", is not a gateway address: use http://host:port, https://host:port (TLS) ` +
          `or host:port, separated by commas (e.g. ${GATEWAY_LIST_EXAMPLE})`,
      };
    }
    addresses.push(parsed);
  }
  return { addresses };
}

/** Options of {@link createGatewayRotation}: the backoff between full rounds. */
export interface GatewayRotationOptions {
  /** Wait after the first full round of failures. @default 200 */
  initialMs?: number;
  /** Longest wait between rounds. @default 2000 */
  maxMs?: number;
  /** Relative jitter, ± this fraction. @default 0.25 */
  jitter?: number;
  /** Source of randomness in [0, 1). @default Math.random */
  random?: () => number;
}

/** Where to go after a failure: the next address, and how long to wait before dialling it. */
export interface GatewayStep<T> {
  address: T;
  index: number;
  delayMs: number;
}

/** Round-robin over the gateways, see {@link createGatewayRotation}. */
export interface GatewayRotation<T> {
  /** The address in use. */
  readonly current: T;
  readonly index: number;
  /**
   * The address in use failed: moves to the next one (round-robin). The step
   * waits only once every address has failed since the last answer (a full
   * round), with jittered exponential backoff between rounds.
   */
  failed(): GatewayStep<T>;
  /** The address in use answered: the next failure starts a new round without waiting. */
  answered(): void;
}

/**
 * Round-robin rotation over `addresses` with backoff between full rounds.
 *
 * @example
 * const rotation = createGatewayRotation(["a:1", "b:2"]);
 * rotation.failed(); // { address: "b:2", index: 1, delayMs: 0 }
 * rotation.failed(); // { address: "a:1", index: 0, delayMs: ~200 }
 */
export function createGatewayRotation<T>(
  addresses: readonly T[],
  options: GatewayRotationOptions = {},
): GatewayRotation<T> {
  if (addresses.length === 0) throw new Error("createGatewayRotation: at least one address is required");
  const backoff = {
    initialMs: options.initialMs ?? 200,
    maxMs: options.maxMs ?? 2_000,
    jitter: options.jitter ?? 0.25,
  };
  const random = options.random ?? Math.random;
  let index = 0;
  /** Addresses that failed since the last answer, in the round under way. */
  let failedInRound = 0;
  /** Full rounds that failed since the last answer. */
  let rounds = 0;
  return {
    get current() {
      return addresses[index] as T;
    },
    get index() {
      return index;
    },
    failed() {
      index = (index + 1) % addresses.length;
      failedInRound++;
      let delayMs = 0;
      if (failedInRound >= addresses.length) {
        delayMs = backoffDelay(rounds++, backoff, random);
        failedInRound = 0;
      }
      return { address: addresses[index] as T, index, delayMs };
    },
    answered() {
      failedInRound = 0;
      rounds = 0;
    },
  };
}
