/**
 * True when a NATS subject matches a pattern: `*` matches one token, a final
 * `>` matches one or more tokens.
 *
 * @example
 * subjectMatches("dray.*.environments.>", "dray.o1.environments.e1.health") // true
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return p.length === s.length;
}
