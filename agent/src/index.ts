/**
 * @module @dray/agent
 * The Dray agent as a library: its lifecycle, configuration, the connector
 * contract and the Postgres connector. The `dray-agent` bin runs main.ts.
 */
export { type Agent, type AgentDeps, type AgentState, createAgent } from "./agent.js";
export { type AgentConfig, loadAgentConfig } from "./config.js";
export type * from "./connector.js";
export { type CredentialStore, createCredentialStore, type StoredCredential } from "./credential-store.js";
export { connectGateway, type GatewayConnection } from "./gateway-client.js";
export { runTask } from "./task-runner.js";
