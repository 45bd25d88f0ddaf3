/**
 * A CRM-like schema (accounts ← contacts ← opportunities ← activities, with
 * the self-reference accounts.parent_id) and its data, generated in SQL.
 */

/** Tables of the CRM schema in dependency order. */
export const CRM_TABLES = ["accounts", "contacts", "opportunities", "activities"] as const;

/** The same tables as pipeline entities. */
export const CRM_ENTITIES = CRM_TABLES.map((t) => `public.${t}`);

/** DDL of the CRM schema. */
export const CRM_SCHEMA = `
  create table accounts (
    id bigint primary key,
    name text not null,
    industry text,
    parent_id bigint references accounts(id),
    annual_revenue numeric(14,2),
    created_at timestamptz not null
  );
  create table contacts (
    id bigint primary key,
    account_id bigint not null references accounts(id),
    email text not null,
    full_name text,
    opted_in boolean not null default false
  );
  create table opportunities (
    id bigint primary key,
    account_id bigint not null references accounts(id),
    contact_id bigint references contacts(id),
    title text not null,
    amount numeric(12,2),
    stage text not null,
    close_date date
  );
  create table activities (
    id bigint primary key,
    opportunity_id bigint not null references opportunities(id),
    contact_id bigint references contacts(id),
    kind text not null,
    note text,
    happened_at timestamptz not null
  );
`;

/** Rows per table. */
export interface CrmSize {
  accounts: number;
  contacts: number;
  opportunities: number;
  activities: number;
}

/**
 * INSERTs filling the CRM schema. Parents point both backwards and forwards
 * (so the self-reference needs its back-fill pass); text holds tabs, newlines,
 * backslashes, quotes and non-ASCII characters; some fields are NULL.
 */
export function crmData(n: CrmSize): string {
  return `
  insert into accounts
    select g, 'Account ' || g || case when g % 97 = 0 then E' \\t tab\\nline \\\\ back "q" ''s'' é✓' else '' end,
      (array['tech', 'retail', 'health', 'finance', null])[g % 5 + 1],
      case when g % 5 = 1 then null when g % 3 = 0 and g < ${n.accounts} then g + 1 else (g + 1) / 2 end,
      case when g % 7 = 0 then null else (g * 1234.5)::numeric(14,2) end,
      timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
    from generate_series(1, ${n.accounts}) g;
  insert into contacts
    select g, (g % ${n.accounts}) + 1, 'c' || g || '@example.com',
      case when g % 11 = 0 then null else 'Contact ' || g end, g % 2 = 0
    from generate_series(1, ${n.contacts}) g;
  insert into opportunities
    select g, (g % ${n.accounts}) + 1, case when g % 4 = 0 then null else (g % ${n.contacts}) + 1 end,
      'Deal ' || g, (g % 100000) * 10.25, (array['new', 'won', 'lost'])[g % 3 + 1],
      date '2025-01-01' + (g % 365)
    from generate_series(1, ${n.opportunities}) g;
  insert into activities
    select g, (g % ${n.opportunities}) + 1, case when g % 3 = 0 then null else (g % ${n.contacts}) + 1 end,
      (array['call', 'email', 'meeting'])[g % 3 + 1],
      case when g % 13 = 0 then E'multi\\nline\\tnote \\\\ ' || g when g % 5 = 0 then null else 'note ' || g end,
      timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
    from generate_series(1, ${n.activities}) g;
  analyze;
  `;
}

/** Total rows of a size. */
export function crmTotal(n: CrmSize): number {
  return n.accounts + n.contacts + n.opportunities + n.activities;
}
